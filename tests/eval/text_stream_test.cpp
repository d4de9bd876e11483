// Issue 26: a text file is read and tokenized in bounded blocks and scored as it streams. The
// streamed documents, token stream and perplexity must be exactly those of the in-memory
// pipeline (split_documents -> build_stream -> perplexity), and memory must not grow with the file.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/eval/text_stream.h"
#include "jointnas/model/checkpoint.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

using namespace jointnas;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_text_stream_" + name + "_" + std::to_string(::getpid()));
  remove_tree(d.string());
  fs::create_directories(d);
  return d;
}

std::string write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

// Texts that exercise every rule of the document split: "\n\n" runs of every length, blank
// pieces, CRLF, pieces just below and above the 20,000-byte long-piece limit, a final piece
// without a newline.
std::vector<std::string> tricky_texts() {
  std::mt19937 rng(26);
  std::vector<std::string> out = {"", "\n", "\n\n\n", "a", "a\n\nb\n\n\n\n  \n\nc", " = A = \n \n text one \n",
                                  "x\r\n\r\ny\n\n\nz", "  \t\n\n \n"};
  const char* atoms[] = {"word", " ", "\n", "\n\n", "\n\n\n", "\t", ".", "\r\n", "é"};
  for (int t = 0; t < 12; ++t) {
    std::string s;
    const size_t target = t < 6 ? 2000 : 60000;
    while (s.size() < target) s += atoms[rng() % 9];
    out.push_back(s);
  }
  std::string long_piece(20000, 'x');  // exactly at the limit, then one over
  out.push_back(long_piece + "\n\nshort");
  out.push_back(long_piece + "y\nline two\n\nshort");
  return out;
}

}  // namespace

TEST(TextStream, DocumentsOfAFileEqualTheInMemorySplitAtAnyBlockSize) {
  const fs::path d = scratch("docs");
  int case_no = 0;
  for (const std::string& text : tricky_texts()) {
    const std::string path = write(d / "t.txt", text);
    for (const char* mode : {"paragraphs", "lines", "whole"}) {
      const auto expected = eval::split_documents(text, mode);
      for (const size_t block : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
        eval::DocumentReader r(path, mode, block);
        std::vector<std::string> got;
        for (eval::DocumentRange doc; r.next(doc);) got.push_back(r.read(doc));
        EXPECT_EQ(got, expected) << "case " << case_no << " mode " << mode << " block " << block;
      }
    }
    ++case_no;
  }
  remove_tree(d.string());
}

// stories260K on TinyStories (llama2.c tokenizer) and ref-17m on wikitext (SentencePiece): the
// streamed result equals the in-memory one bit for bit; with max_windows reading stops once the
// windows are had, without it the counts of the whole file are reported as before.
TEST(TextStream, PerplexityOfAFileEqualsTheInMemoryPipeline) {
  struct Case {
    std::string model, text;
  };
  for (const Case& c : {Case{repo_path("models/stories260K/stories260K.bin"),
                             shared_path("data/text/tinystories/tinystories_val_head.txt")},
                        Case{shared_path("models/ref-17m"), shared_path("data/text/wikitext2/wiki.test.raw")}}) {
    JNAS_REQUIRE_FILE(c.text);
    JNAS_REQUIRE_FILE(c.model);
    SCOPED_TRACE(c.model);
    const model::Checkpoint ck = model::load_checkpoint(c.model);
    const model::LlamaModel m = model::LlamaModel::from_checkpoint(ck, {});
    auto tok = fs::is_directory(c.model)
                   ? tok::load_tokenizer(c.model)
                   : tok::load_llama2c_tokenizer(repo_path("models/stories260K/tok512.bin"), 512);
    const std::string text = read_text_file(c.text);
    for (const char* proto : {"stream", "gptq"}) {
      SCOPED_TRACE(proto);
      eval::PplProtocol p = eval::ppl_protocol(proto, 256, tok->bos_id());
      p.window = 129;
      p.max_windows = 24;
      p.batch = 5;  // a partial last batch
      const auto docs = eval::split_documents(text, p.documents);
      const auto stream = eval::build_stream(docs, *tok, p, tok->bos_id(), tok->eos_id());
      const eval::PplResult want = eval::perplexity(m, stream, p);
      const eval::FilePplResult fr = eval::perplexity_of_file(m, c.text, *tok, p, tok->bos_id(), tok->eos_id());
      const eval::PplResult& got = fr.result;
      EXPECT_EQ(got.nll, want.nll);
      EXPECT_EQ(got.tokens, want.tokens);
      EXPECT_EQ(got.windows, want.windows);
      // Reading stops once the 24 windows are had (documents are read one at a time, a long one a
      // 1 MiB block at a time): a prefix of the stream, or all of it when the file is that short.
      EXPECT_GE(got.stream_tokens, (p.max_windows - 1) * (p.stride == 0 ? p.window : p.stride) + p.window);
      if (fr.complete) {
        EXPECT_EQ(got.stream_tokens, static_cast<int64_t>(stream.size()));
        EXPECT_EQ(got.documents, static_cast<int64_t>(docs.size()));
      } else {
        EXPECT_LT(got.stream_tokens, static_cast<int64_t>(stream.size()));
        EXPECT_LT(got.documents, static_cast<int64_t>(docs.size()) + 1);
      }
      if (std::string(proto) == "stream") EXPECT_FALSE(fr.complete);  // many short documents
      // Without max_windows the whole file is read and scored, with the counts of the whole file.
      if (std::string(proto) == "stream" && fs::file_size(c.text) < 200000) {
        eval::PplProtocol all = p;
        all.max_windows = 0;
        const eval::PplResult w_all = eval::perplexity(m, stream, all);
        const eval::FilePplResult f_all = eval::perplexity_of_file(m, c.text, *tok, all, tok->bos_id(), tok->eos_id());
        EXPECT_TRUE(f_all.complete);
        EXPECT_EQ(f_all.result.nll, w_all.nll);
        EXPECT_EQ(f_all.result.windows, w_all.windows);
        EXPECT_EQ(f_all.result.stream_tokens, static_cast<int64_t>(stream.size()));
        EXPECT_EQ(f_all.result.documents, static_cast<int64_t>(docs.size()));
      }
      // The calibration reader: the same stream, or its prefix.
      EXPECT_EQ(eval::read_token_stream(c.text, *tok, p, tok->bos_id(), tok->eos_id(), 0), stream);
      const auto head = eval::read_token_stream(c.text, *tok, p, tok->bos_id(), tok->eos_id(), 1000);
      EXPECT_EQ(head, std::vector<int64_t>(stream.begin(), stream.begin() + 1000));
    }
  }
}

TEST(TextStream, AShortTextIsAConfigErrorAndAMissingOneAnIoError) {
  const fs::path d = scratch("short");
  auto tok = tok::load_llama2c_tokenizer(repo_path("models/stories260K/tok512.bin"), 512);
  const model::LlamaModel m =
      model::LlamaModel::from_checkpoint(model::load_checkpoint(repo_path("models/stories260K/stories260K.bin")), {});
  eval::PplProtocol p;
  EXPECT_THROW(eval::perplexity_of_file(m, write(d / "s.txt", "Once upon a time."), *tok, p, 1, 2), ConfigError);
  EXPECT_THROW(eval::perplexity_of_file(m, (d / "missing.txt").string(), *tok, p, 1, 2), IoError);
  remove_tree(d.string());
}
