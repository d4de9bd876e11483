// Issue 26: RoPE tables are sized by the positions used, not by max_position_embeddings (2^24
// built about 15 GB up front), and growing a table never changes a row already handed out.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/model/llama.h"
#include "jointnas/model/rope.h"
#include "tiny_llama.h"

using namespace jointnas;

TEST(Rope, TablePositionsArePowersOfTwoOfTheUseCappedByTheModel) {
  EXPECT_EQ(model::rope_table_positions(1, 512), 256);
  EXPECT_EQ(model::rope_table_positions(257, 512), 512);
  EXPECT_EQ(model::rope_table_positions(512, 512), 512);
  EXPECT_EQ(model::rope_table_positions(300, 300), 512);  // whole blocks of 256
  EXPECT_EQ(model::rope_table_positions(5000, int64_t(1) << 24), 8192);
}

TEST(Rope, GrowingATableKeepsEveryRowAndEqualsTheFullTable) {
  model::RopeParameters rp;
  const int64_t hd = 64, max_pos = 4096;
  model::RopeTables grown(hd, 10000.0, rp, max_pos, at::kCPU);
  EXPECT_EQ(grown.positions(), 0);  // nothing built before use
  const auto [c1, s1] = grown.get(10);
  EXPECT_EQ(c1.size(0), 256);
  const auto [c2, s2] = grown.get(3000);
  EXPECT_EQ(c2.size(0), 4096);
  EXPECT_TRUE(at::equal(c2.narrow(0, 0, 256), c1));
  EXPECT_TRUE(at::equal(s2.narrow(0, 0, 256), s1));
  // The reference: transformers' formula over all positions at once (fp32 position x inv_freq).
  const at::Tensor inv = model::rope_inv_freq(hd, 10000.0, rp);
  const at::Tensor freqs = at::arange(max_pos, at::kLong).to(at::kFloat).unsqueeze(1) * inv.unsqueeze(0);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  // Same fp32 inputs, same cos / sin: equal up to the vectorized kernels' last-ulp differences.
  EXPECT_TRUE(at::allclose(c2, emb.cos(), 0, 1e-6));
  EXPECT_TRUE(at::allclose(s2, emb.sin(), 0, 1e-6));
  EXPECT_THROW(grown.get(max_pos + 1), ConfigError);
}

// A model whose config says 2^24 positions builds only what a forward pass uses.
TEST(Rope, AModelWithAHugeMaxPositionEmbeddingsBuildsSmallTables) {
  model::Checkpoint ck = jointnas::testing::tiny_llama_checkpoint(4);
  const model::LlamaModel ref = model::LlamaModel::from_checkpoint(ck, {});
  ck.config.max_position_embeddings = int64_t(1) << 24;
  const model::LlamaModel m = model::LlamaModel::from_checkpoint(ck, {});
  const at::Tensor ids = at::arange(0, 20, at::kLong).remainder(ck.config.vocab_size).unsqueeze(0);
  EXPECT_TRUE(at::equal(m.forward(ids), ref.forward(ids)));
  model::KVCache cache = m.new_cache(1, 600);
  (void)cache;
  // A KV cache of more positions than the machine's memory holds is refused before allocating.
  EXPECT_THROW(m.new_cache(1 << 20, int64_t(1) << 24), ConfigError);
  // And so is a forward pass whose logits alone would not fit.
  EXPECT_THROW(m.check_forward_fits(1 << 16, 1 << 20, false, "--batch"), ConfigError);
}
