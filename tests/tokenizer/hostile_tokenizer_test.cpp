// Issue 26 at the tokenizer layer: a tokenizer.json without model.merges is refused (as HF
// tokenizers refuses it), and non-finite llama2.c scores are refused.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/tokenizer/tokenizer.h"

using namespace jointnas;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_hostile_tok_" + name + "_" + std::to_string(::getpid()));
  remove_tree(d.string());
  fs::create_directories(d);
  return d;
}

std::string repo_path(const std::string& rel) {
  return (fs::path(JNAS_FIXTURES_DIR).parent_path().parent_path() / rel).string();
}

std::string io_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Without merges every byte became its own token: a silently different tokenizer.
TEST(HostileTokenizer, TokenizerJsonWithoutMergesIsRefused) {
  const fs::path d = scratch("nomerges");
  const std::string pre = R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false})";
  std::ofstream(d / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}}, )" << pre << "}";
  const std::string msg = io_error_of([&] { tok::load_hf_tokenizer_json((d / "tokenizer.json").string()); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.merges"), std::string::npos) << msg;
  // An explicit empty list is a valid (if useless) BPE, as in HF tokenizers.
  std::ofstream(d / "empty.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": []}, )"
                                  << pre << "}";
  EXPECT_NO_THROW(tok::load_hf_tokenizer_json((d / "empty.json").string()));
  remove_tree(d.string());
}

// A NaN score broke the merge heap's ordering and changed the tokenization without a word.
TEST(HostileTokenizer, NonFiniteLlama2cScoresAreRefused) {
  const std::string tok512 = repo_path("models/stories260K/tok512.bin");
  const fs::path d = scratch("nan_scores");
  std::string bytes = read_text_file(tok512);
  // Token 300's score: skip the header (4 bytes) and 300 (score, length, piece) records.
  size_t off = 4;
  for (int i = 0; i < 300; ++i) {
    int32_t len = 0;
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8 + static_cast<size_t>(len);
  }
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::memcpy(bytes.data() + off, &bad, 4);
    std::ofstream(d / "tok.bin", std::ios::binary) << bytes;
    const std::string msg = io_error_of([&] { tok::load_llama2c_tokenizer((d / "tok.bin").string(), 512); });
    EXPECT_NE(msg.find("tok.bin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("token 300"), std::string::npos) << msg;
    EXPECT_NE(msg.find("score"), std::string::npos) << msg;
  }
  remove_tree(d.string());
}
