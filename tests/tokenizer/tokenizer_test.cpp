// Tokenizers against their references: SentencePiece ids from Python sentencepiece
// (scripts/make_tokenizer_goldens.py), llama2.c decoding against llama2.c's own output.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/tokenizer/tokenizer.h"
#include "tensor_assert.h"

using namespace jointnas;
using jointnas::testing::fixture_path;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

TEST(Tokenizer, SentencePieceMatchesPythonReference) {
  Json corpus = read_json_file(fixture_path("tokenizer/corpus.json"));
  Json goldens = read_json_file(fixture_path("tokenizer/goldens.json"));
  for (const char* name : {"ref-17m", "llama2"}) {
    const Json& g = goldens[name];
    const std::string path = shared_path("data/" + g["file"].get<std::string>());
    const std::string model_path = fs::exists(path) ? path : shared_path(g["file"].get<std::string>());
    JNAS_REQUIRE_FILE(model_path);
    auto tok = tok::load_sentencepiece(model_path);
    for (size_t i = 0; i < corpus.size(); ++i) {
      const std::string text = corpus[i].get<std::string>();
      auto ids = tok->encode(text);
      EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end()), g["ids"][i].get<std::vector<int32_t>>())
          << name << ": " << text;
      EXPECT_EQ(tok->decode(ids), g["decoded"][i].get<std::string>()) << name << ": " << text;
    }
  }
}

TEST(Tokenizer, Llama2cDecodesLikeRunC) {
  auto tok = tok::load_llama2c_tokenizer(repo_path("models/stories260K/tok512.bin"), 512);
  std::vector<int32_t> ids;
  std::ifstream in(repo_path("models/stories260K/expected_greedy_ids.txt"));
  for (int32_t x; in >> x;) ids.push_back(x);
  std::ifstream t(repo_path("models/stories260K/expected_greedy_text.txt"));
  std::string text((std::istreambuf_iterator<char>(t)), {});
  text.pop_back();  // run.c's final newline
  EXPECT_EQ(tok->decode(ids), text);
  // run.c's encoder on its own output: decode(encode(x)) == x, and it compresses (merges happen).
  auto enc = tok->encode(text);
  EXPECT_EQ(tok->decode(enc), text);
  EXPECT_LT(enc.size(), text.size() / 2);
  // Byte fallback for characters outside the 512-token vocabulary.
  EXPECT_EQ(tok->decode(tok->encode("café 😀")), "café 😀");
}

TEST(Tokenizer, MalformedFilesAreIoErrors) {
  fs::path d = fs::temp_directory_path() / "jnas_tok_bad";
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "tokenizer.model") << "not a protobuf at all";
  EXPECT_THROW(tok::load_sentencepiece((d / "tokenizer.model").string()), IoError);
  EXPECT_THROW(tok::load_tokenizer(d.string()), IoError);
  fs::copy_file(repo_path("models/stories260K/tok512.bin"), d / "tok.bin");
  fs::resize_file(d / "tok.bin", 1000);
  EXPECT_THROW(tok::load_llama2c_tokenizer((d / "tok.bin").string(), 512), IoError);
  {
    std::ofstream f(d / "neg.bin", std::ios::binary);
    int32_t h[3] = {10, 0, -5};  // max_len, score bits, negative length
    f.write(reinterpret_cast<const char*>(h), sizeof h);
  }
  EXPECT_THROW(tok::load_llama2c_tokenizer((d / "neg.bin").string(), -1), IoError);
  EXPECT_THROW(tok::load_tokenizer((d / "missing").string()), IoError);
}
