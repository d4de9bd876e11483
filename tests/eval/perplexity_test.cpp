// Perplexity protocol: document splitting, window accounting, and the ref-17m reference NLL.
#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

using namespace jointnas;
using jointnas::testing::shared_path;

TEST(Perplexity, SplitsDocumentsLikeTheManifest) {
  // wiki.test.raw style: empty rows are " \n", so there is no "\n\n" and short text stays whole.
  EXPECT_EQ(eval::split_documents(" = A = \n \n text one \n", "paragraphs"),
            (std::vector<std::string>{" = A = \n \n text one \n"}));
  EXPECT_EQ(eval::split_documents("a\n\nb\n\n\n\n  \n\nc", "paragraphs"),
            (std::vector<std::string>{"a", "b", "c"}));
  // A piece over 20,000 chars falls back to one document per non-blank line.
  std::string long_piece;
  for (int i = 0; i < 3000; ++i) long_piece += " line " + std::to_string(i) + " \n \n";
  auto docs = eval::split_documents(long_piece, "paragraphs");
  EXPECT_EQ(docs.size(), 3000u);
  EXPECT_EQ(docs[0], " line 0 ");
  EXPECT_EQ(eval::split_documents("x\n \ny", "lines"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(eval::split_documents("x\n\ny", "whole").size(), 1u);
}

TEST(Perplexity, WindowsAndStrideScoreEachPredictionOnce) {
  model::LlamaModel m =
      model::LlamaModel::from_checkpoint(jointnas::testing::tiny_llama_checkpoint(9), {});
  std::vector<int64_t> stream;
  for (int i = 0; i < 100; ++i) stream.push_back((i * 37) % 97);
  eval::PplProtocol p;
  p.window = 33;
  auto r = eval::perplexity(m, stream, p);
  EXPECT_EQ(r.windows, 3);        // 100 // 33 full windows
  EXPECT_EQ(r.tokens, 3 * 32);    // 32 predictions each
  // Sliding: window 33, stride 8 -> first window 32 predictions, then 8 per window.
  p.stride = 8;
  auto s = eval::perplexity(m, stream, p);
  EXPECT_EQ(s.windows, (100 - 33) / 8 + 1);
  EXPECT_EQ(s.tokens, 32 + (s.windows - 1) * 8);
  // The mean NLL equals an independent per-position computation for the non-overlapping case.
  at::Tensor x = at::tensor(stream, at::kLong).narrow(0, 0, 33).view({1, 33});
  at::Tensor lp = at::log_softmax(m.forward(x.narrow(1, 0, 32)), -1);
  double nll0 = -lp.squeeze(0).gather(1, x.narrow(1, 1, 32).view({32, 1})).sum().item<double>() / 32;
  p.stride = 0;
  p.max_windows = 1;
  EXPECT_NEAR(eval::perplexity(m, stream, p).nll, nll0, 1e-5);
  EXPECT_THROW(eval::perplexity(m, std::vector<int64_t>(10, 1), p), ConfigError);
}

TEST(Perplexity, Ref17mWikitextMatchesManifest) {
  // MANIFEST: NLL 4.44567 over wiki.test.raw (721 windows of 513). Acceptance: within 1e-3.
  const std::string dir = shared_path("models/ref-17m");
  const std::string text = shared_path("data/text/wikitext2/wiki.test.raw");
  JNAS_REQUIRE_FILE(text);
  JNAS_REQUIRE_FILE(dir + "/tokenizer.model");
  model::LlamaModel m = model::LlamaModel::from_checkpoint(model::load_checkpoint(dir), {});
  auto tok = tok::load_tokenizer(dir);
  eval::PplProtocol p;
  auto stream = eval::build_stream(eval::split_documents(read_text_file(text), p.documents), *tok, p, 1, 2);
  EXPECT_EQ(stream.size(), 370226u);  // the token count in the model's training log
  auto r = eval::perplexity(m, stream, p);
  EXPECT_EQ(r.windows, 721);
  RecordProperty("nll", std::to_string(r.nll));
  EXPECT_NEAR(r.nll, 4.44567, 1e-3);
}
