// The search space's view in the cost model (search/cost.h): the discrete cost of an
// architecture through arch_specs() and through the cost space's selection agree, and the
// expected cost at the architecture's one-hot probabilities equals both.
#include <random>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/expected_cost.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/workload.h"
#include "jointnas/search/cost.h"

namespace jointnas::search {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 97;
  c.hidden_size = 256;
  c.intermediate_size = 384;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 64;
  return c;
}

constexpr const char* kSpace = R"(
hidden: [128, 256]
depth: [2, 3, 4]
layers:
  heads: [1, 2]
  head_dim: [32, 64]
  intermediate: [128, 256, 384]
formats: [bf16, w8a16, w4a16_g128, w8a8, fp8_e4m3]
)";

at::Tensor oh(size_t n, int64_t i) {
  at::Tensor t = at::zeros({static_cast<int64_t>(n)}, at::kDouble);
  t[i] = 1.0;
  return t;
}

ArchDist one_hot(const SearchSpace& s, const Arch& a) {
  ArchDist d;
  d.hidden = oh(s.hidden.size(), a.hidden);
  d.depth = oh(s.depth.size(), a.depth);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    d.kv_groups.push_back(oh(lc.kv_groups.size(), a.kv_groups[l]));
    d.head_dims.push_back(oh(lc.head_dims.size(), a.head_dims[l]));
    d.intermediate.push_back(oh(lc.intermediate.size(), a.intermediate[l]));
    std::array<at::Tensor, kNumFormatSlots> f;
    for (int k = 0; k < kNumFormatSlots; ++k) f[k] = oh(lc.formats[k].size(), a.formats[l][k]);
    d.formats.push_back(f);
  }
  return d;
}

TEST(SearchCost, OneHotExpectedEqualsDiscreteOfExtractedSpecs) {
  const model::LlamaConfig c = config();
  const SearchSpace s = SearchSpace::from_yaml(kSpace, c, "<test>", "cuda");
  const std::vector<int64_t> rank = {2, 0, 3, 1};
  const profile::CostSpace cs = cost_space(s, c, rank);
  ASSERT_EQ(cs.layers[0].attention.size(), 4u);
  EXPECT_FALSE(cs.layers[1].can_skip);  // rank 0 and 1 are kept at every depth >= 2
  EXPECT_TRUE(cs.layers[2].can_skip);
  std::mt19937_64 rng(5);
  auto pick = [&](size_t n) { return static_cast<int64_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  for (const char* kind : {"decode", "prefill"}) {
    profile::Workload w;
    w.kind = kind;
    w.batch = 2;
    w.context = 40;
    w.tokens = 16;
    profile::LatencyTable t;
    std::uniform_real_distribution<double> u(0.01, 1.0);
    for (const std::string& k : profile::required_keys(c, cs, w)) t.set(k, {u(rng), 0, 0, 1});
    for (int trial = 0; trial < 30; ++trial) {
      Arch a;
      a.hidden = pick(s.hidden.size());
      a.depth = pick(s.depth.size());
      for (const auto& lc : s.layers) {
        a.kv_groups.push_back(pick(lc.kv_groups.size()));
        a.head_dims.push_back(pick(lc.head_dims.size()));
        a.intermediate.push_back(pick(lc.intermediate.size()));
        a.formats.push_back({pick(lc.formats[0].size()), pick(lc.formats[1].size()), pick(lc.formats[2].size()),
                             pick(lc.formats[3].size())});
      }
      auto [cfg, specs] = arch_specs(c, s, a, rank);
      auto [cfg2, specs2] = profile::select(c, cs, selection(s, a, rank));
      ASSERT_EQ(cfg.hidden_size, cfg2.hidden_size);
      for (size_t l = 0; l < specs.size(); ++l) {
        EXPECT_EQ(specs[l].skip, specs2[l].skip);
        if (specs[l].skip) continue;
        EXPECT_EQ(specs[l].num_attention_heads, specs2[l].num_attention_heads);
        EXPECT_EQ(specs[l].num_key_value_heads, specs2[l].num_key_value_heads);
        EXPECT_EQ(specs[l].head_dim, specs2[l].head_dim);
        EXPECT_EQ(specs[l].rope_theta, specs2[l].rope_theta);
        EXPECT_EQ(specs[l].intermediate_size, specs2[l].intermediate_size);
        EXPECT_EQ(specs[l].format_qkv, specs2[l].format_qkv);
        EXPECT_EQ(specs[l].format_down, specs2[l].format_down);
      }
      const profile::Cost d = profile::predict(cfg, specs, t, w);
      const profile::ExpectedCost e = profile::expected_cost(c, cs, arch_probs(s, one_hot(s, a), rank), t, w);
      EXPECT_NEAR(e.latency_ms.item<double>(), d.latency_ms, 1e-12 * d.latency_ms) << kind << " " << trial;
      EXPECT_EQ(e.weight_bytes.item<double>(), static_cast<double>(d.weight_bytes));
      EXPECT_EQ(e.kv_cache_bytes.item<double>(), static_cast<double>(d.kv_cache_bytes));
      EXPECT_EQ(e.params.item<double>(), static_cast<double>(d.params));
    }
  }
}

// Soft probabilities: the latency is differentiable in every decision's logits.
TEST(SearchCost, ExpectedLatencyHasGradientsForEveryDecision) {
  const model::LlamaConfig c = config();
  const SearchSpace s = SearchSpace::from_yaml(kSpace, c, "<test>", "cuda");
  const profile::CostSpace cs = cost_space(s, c, {});
  profile::Workload w;
  profile::LatencyTable t;
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0.01, 1.0);
  for (const std::string& k : profile::required_keys(c, cs, w)) t.set(k, {u(rng), 0, 0, 1});
  ArchDist d = one_hot(s, largest_arch(s));
  std::vector<at::Tensor> logits;
  auto soft = [&](at::Tensor& p) {
    at::Tensor z = at::randn(p.sizes(), at::kDouble).requires_grad_(true);
    logits.push_back(z);
    p = at::softmax(z, 0);
  };
  soft(d.hidden);
  soft(d.depth);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    soft(d.kv_groups[l]);
    soft(d.head_dims[l]);
    soft(d.intermediate[l]);
    for (auto& f : d.formats[l]) soft(f);
  }
  profile::expected_cost(c, cs, arch_probs(s, d, {}), t, w).latency_ms.backward();
  for (const at::Tensor& z : logits) {
    ASSERT_TRUE(z.grad().defined());
    EXPECT_GT(z.grad().abs().max().item<double>(), 0.0);
  }
}

}  // namespace
}  // namespace jointnas::search
