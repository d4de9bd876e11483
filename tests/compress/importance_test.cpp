// Importance and the function-preserving permutation (issue 5): the permuted model computes the
// same logits, importance of the permuted model is the identity (every prefix is the most
// important part), runs are deterministic, untrusted JSON is validated, and a wrong permutation
// is caught (so the equality tests can fail).
#include <filesystem>
#include <numeric>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/compress/importance.h"
#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

namespace jointnas::compress {
namespace {
using model::LlamaModel;

at::Tensor ids(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, vocab, {b, t}, at::kLong);
}

// Tolerance of "same function" in fp32. The permutation changes nothing but the order of the
// terms of every sum over H, nh*hd and I (matmuls, RMSNorm's mean of squares). A sum of K terms
// reassociated differs by at most ~K*u*sum|terms| and typically sqrt(K)*u*sum|terms|
// (u = 2^-24 = 6e-8); with K <= 1152 (ref-17m's I) that is ~2e-6 of the terms' magnitude per op,
// and through a few blocks (the residual stream does not amplify such relative errors much) the
// logits move by a few 1e-6 of their magnitude. 2e-5 of max|logit| leaves a margin of several
// times the typical error while a real mistake (test WrongPermutationChangesLogits) moves the
// logits by O(max|logit|).
double same_function_atol(const at::Tensor& logits) {
  return 2e-5 * std::max(1.0, logits.abs().max().item<double>());
}

bool is_identity(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

bool non_increasing(const std::vector<double>& s) {
  return std::is_sorted(s.rbegin(), s.rend());
}

Importance tiny_importance(const model::Checkpoint& ck, uint64_t seed) {
  const LlamaModel m = LlamaModel::from_checkpoint(ck, {});
  ImportanceOptions o;
  o.batch = 3;  // 8 windows: batches of 3, 3, 2 (a ragged last batch)
  return compute_importance(m, ids(8, 24, ck.config.vocab_size, seed), o);
}

TEST(Importance, RankDescendingIsStableAndSorted) {
  const Ranking r = rank_descending({1.0, 3.0, 1.0, 2.0, 3.0});
  EXPECT_EQ(r.perm, (std::vector<int64_t>{1, 4, 3, 0, 2}));  // ties: the smaller index first
  EXPECT_EQ(r.score, (std::vector<double>{3.0, 3.0, 2.0, 1.0, 1.0}));
  EXPECT_THROW(rank_descending({1.0, std::nan("")}), Error);
}

// (1) The permuted checkpoint computes the same logits, GQA with group size 2, tied and untied.
TEST(Importance, PermutationPreservesLogits) {
  for (const bool tied : {false, true}) {
    const model::Checkpoint ck = testing::tiny_llama_checkpoint(11, tied);
    const Importance imp = tiny_importance(ck, 1);
    // Not vacuous: the rankings do move channels, groups, v dims and neurons.
    EXPECT_FALSE(is_identity(imp.hidden.perm));
    bool moved_groups = false, moved_v = false, moved_neurons = false;
    for (const LayerImportance& li : imp.layers) {
      moved_groups |= !is_identity(li.kv_groups.perm);
      for (const Ranking& r : li.v_dims) moved_v |= !is_identity(r.perm);
      moved_neurons |= !is_identity(li.neurons.perm);
    }
    EXPECT_TRUE(moved_groups && moved_v && moved_neurons);

    const model::Checkpoint pc = permute_checkpoint(ck, imp);
    EXPECT_EQ(pc.tensors.count("lm_head.weight"), tied ? 0u : 1u);
    const at::Tensor x = ids(2, 17, 97, 3);
    const at::Tensor want = LlamaModel::from_checkpoint(ck, {}).forward(x);
    const at::Tensor got = LlamaModel::from_checkpoint(pc, {}).forward(x);
    JNAS_EXPECT_CLOSE(got, want, same_function_atol(want), 0.0);
  }
}

// (2) Every prefix is the most important part: importance of the permuted model is the identity
// with non-increasing scores equal to the original ones (same function, same activations up to
// the channel order and fp rounding).
TEST(Importance, PermutedModelHasIdentityRankings) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(12);
  const Importance imp = tiny_importance(ck, 2);
  const Importance again = tiny_importance(permute_checkpoint(ck, imp), 2);
  // Scores are sums of |activations| over 192 tokens in fp32 then fp64: reordered sums differ by
  // ~1e-7 relative; 1e-5 relative is far below the gaps between the (random-model) scores that
  // could flip an order.
  auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::abs(a[i] - b[i]) > 1e-5 * std::max(std::abs(a[i]), 1e-12)) return false;
    }
    return true;
  };
  EXPECT_TRUE(is_identity(again.hidden.perm));
  EXPECT_TRUE(non_increasing(again.hidden.score));
  EXPECT_TRUE(close(again.hidden.score, imp.hidden.score));
  ASSERT_EQ(again.layers.size(), 3u);
  for (size_t l = 0; l < 3; ++l) {
    const LayerImportance& a = again.layers[l];
    EXPECT_TRUE(is_identity(a.kv_groups.perm)) << "layer " << l;
    EXPECT_TRUE(close(a.kv_groups.score, imp.layers[l].kv_groups.score)) << "layer " << l;
    for (size_t j = 0; j < a.v_dims.size(); ++j) {
      EXPECT_TRUE(is_identity(a.v_dims[j].perm)) << "layer " << l << " group " << j;
      EXPECT_TRUE(non_increasing(a.v_dims[j].score));
      EXPECT_TRUE(close(a.v_dims[j].score, imp.layers[l].v_dims[j].score));
    }
    EXPECT_TRUE(is_identity(a.neurons.perm)) << "layer " << l;
    EXPECT_TRUE(non_increasing(a.neurons.score));
  }
  EXPECT_TRUE(close(again.block_influence, imp.block_influence));
  EXPECT_EQ(again.block_rank, imp.block_rank);  // depth is ranked, not permuted
  for (size_t r = 1; r < imp.block_rank.size(); ++r) {
    EXPECT_GE(imp.block_influence[imp.block_rank[r - 1]], imp.block_influence[imp.block_rank[r]]);
  }
}

// (3) Same seed and data: identical JSON (and the JSON round-trips).
TEST(Importance, DeterministicAndJsonRoundTrips) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(13);
  const Json a = tiny_importance(ck, 4).to_json();
  const Json b = tiny_importance(ck, 4).to_json();
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_EQ(a["format_version"], 1);
  EXPECT_EQ(a["calibration"]["tokens"], 8 * 24);
  const Importance back = Importance::from_json(Json::parse(a.dump()), "imp.json");
  EXPECT_EQ(back.to_json().dump(), a.dump());
  back.check_shapes(ck.config, "imp.json");
}

// (4) Untrusted JSON: a perm that is no permutation, or of the wrong length, is an IoError.
TEST(Importance, FromJsonRejectsBadPermutations) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(14);
  const Json good = tiny_importance(ck, 5).to_json();
  auto rejects = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    try {
      Importance::from_json(j, "imp.json").check_shapes(ck.config, "imp.json");
    } catch (const IoError&) {
      return true;
    }
    return false;
  };
  EXPECT_FALSE(rejects([](Json&) {}));
  EXPECT_TRUE(rejects([](Json& j) { j["hidden"]["perm"][0] = j["hidden"]["perm"][1]; }));  // duplicate
  EXPECT_TRUE(rejects([](Json& j) { j["hidden"]["perm"][0] = 64; }));                       // out of range
  EXPECT_TRUE(rejects([](Json& j) { j["hidden"]["perm"][0] = -1; }));
  EXPECT_TRUE(rejects([](Json& j) { j["hidden"]["perm"][0] = 0.5; }));
  EXPECT_TRUE(rejects([](Json& j) {  // a permutation of 0..62, one short for H = 64
    j["hidden"]["perm"] = Json::array();
    for (int i = 0; i < 63; ++i) j["hidden"]["perm"].push_back(i);
    j["hidden"]["score"].erase(0);
  }));
  EXPECT_TRUE(rejects([](Json& j) { j["hidden"]["score"].erase(0); }));  // scores != perm length
  EXPECT_TRUE(rejects([](Json& j) { j["layers"][1]["neurons"]["perm"][3] = 0; }));
  EXPECT_TRUE(rejects([](Json& j) { j["layers"][2]["v_dims"].erase(0); }));
  EXPECT_TRUE(rejects([](Json& j) { j["layers"][0]["v_dims"][1]["perm"][2] = 99; }));
  EXPECT_TRUE(rejects([](Json& j) { j["layers"][0]["kv_groups"]["perm"] = {1, 1}; }));
  EXPECT_TRUE(rejects([](Json& j) { j["block_rank"] = {0, 1, 1}; }));
  EXPECT_TRUE(rejects([](Json& j) { j["layers"].erase(2); }));
  EXPECT_TRUE(rejects([](Json& j) { j["format_version"] = 2; }));
  EXPECT_TRUE(rejects([](Json& j) { j.erase("hidden"); }));
  // A valid file of another model: rejected against this one, also by permute_checkpoint.
  model::Checkpoint wider = testing::tiny_llama_checkpoint(14);
  wider.config.intermediate_size = 128;
  EXPECT_THROW(Importance::from_json(good, "imp.json").check_shapes(wider.config, "imp.json"),
               IoError);
  EXPECT_THROW(permute_checkpoint(wider, Importance::from_json(good, "imp.json")), IoError);
}

// Packed or quantized checkpoints are refused: permuted input columns would change the
// quantization groups (and packed data has no float rows to move).
TEST(Importance, RefusesQuantizedCheckpoints) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(15);
  const Importance imp = tiny_importance(ck, 6);
  LlamaModel q = LlamaModel::from_checkpoint(ck, {});
  quantize_model(q, uniform_plan(3, "w8a16"));
  model::Checkpoint packed;
  packed.config = q.config();
  packed.config.layer_specs = q.specs();
  packed.tensors = q.state_dict();
  EXPECT_THROW(permute_checkpoint(packed, imp), ConfigError);
  model::Checkpoint planned = ck;  // float tensors, but quantized at load
  planned.config.layer_specs = q.specs();
  EXPECT_THROW(permute_checkpoint(planned, imp), ConfigError);
  EXPECT_THROW(check_permutable(packed), ConfigError);
  check_permutable(ck);
}

// A skipped block (identity) has influence 0, empty rankings, and the permutation still holds.
TEST(Importance, SkippedLayers) {
  model::Checkpoint ck = testing::tiny_llama_checkpoint(16);
  ck.config.layer_specs = model::dense_layer_specs(ck.config);
  ck.config.layer_specs[1].skip = true;
  const Importance imp = tiny_importance(ck, 7);
  EXPECT_EQ(imp.block_influence[1], 0.0);
  EXPECT_EQ(imp.block_rank.back(), 1);
  EXPECT_TRUE(imp.layers[1].empty());
  EXPECT_GT(imp.block_influence[0], 0.0);
  const Importance back = Importance::from_json(imp.to_json(), "imp.json");
  const model::Checkpoint pc = permute_checkpoint(ck, back);
  const at::Tensor x = ids(2, 9, 97, 8);
  const at::Tensor want = LlamaModel::from_checkpoint(ck, {}).forward(x);
  JNAS_EXPECT_CLOSE(LlamaModel::from_checkpoint(pc, {}).forward(x), want, same_function_atol(want), 0.0);
}

// (5) The equality above can fail: wrong permutations move the logits far beyond the tolerance.
TEST(Importance, WrongPermutationChangesLogits) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(17);
  const at::Tensor x = ids(2, 13, 97, 9);
  const at::Tensor want = LlamaModel::from_checkpoint(ck, {}).forward(x);
  auto max_diff = [&](const model::Checkpoint& c) {
    return (LlamaModel::from_checkpoint(c, {}).forward(x) - want).abs().max().item<double>();
  };
  const double atol = same_function_atol(want);
  {  // q heads 0 and 1 (different KV groups) swapped without o_proj
    model::Checkpoint bad = ck;
    at::Tensor& q = bad.tensors["model.layers.1.self_attn.q_proj.weight"];
    q = at::cat({q.narrow(0, 16, 16), q.narrow(0, 0, 16), q.narrow(0, 32, 32)});
    EXPECT_GT(max_diff(bad), 100 * atol);
  }
  const Importance imp = tiny_importance(ck, 10);
  const model::Checkpoint pc = permute_checkpoint(ck, imp);
  for (const char* name : {"model.layers.0.input_layernorm.weight",  // norm left unpermuted
                           "model.layers.2.self_attn.o_proj.weight",  // v dims without o columns
                           "model.layers.1.mlp.down_proj.weight"}) {  // neurons without down
    model::Checkpoint bad = pc;
    bad.tensors[name] = ck.tensors.at(name);
    if (bad.tensors[name].size(0) == 64 && bad.tensors[name].dim() == 2) {
      // o/down: keep the hidden (row) permutation, undo only the head / neuron one
      bad.tensors[name] = bad.tensors[name].index_select(
          0, at::tensor(at::ArrayRef<int64_t>(imp.hidden.perm), at::kLong));
    }
    EXPECT_GT(max_diff(bad), 100 * atol) << name;
  }
}

// ref-17m (bf16 on disk, 6 heads / 2 KV heads: group size 3, tied): the permuted checkpoint
// computes the same fp32 logits.
TEST(Importance, Ref17mPermutationPreservesLogits) {
  const std::string dir = testing::shared_path("models/ref-17m");
  JNAS_REQUIRE_FILE(dir + "/config.json");
  const model::Checkpoint ck = model::load_checkpoint(dir);
  const LlamaModel m = LlamaModel::from_checkpoint(ck, {});
  const Importance imp = compute_importance(m, ids(4, 64, ck.config.vocab_size, 11));
  const model::Checkpoint pc = permute_checkpoint(ck, imp);
  EXPECT_EQ(pc.tensors.at("model.layers.0.self_attn.q_proj.weight").scalar_type(), at::kBFloat16);
  const at::Tensor x = ids(2, 48, ck.config.vocab_size, 12);
  const at::Tensor want = m.forward(x);
  JNAS_EXPECT_CLOSE(LlamaModel::from_checkpoint(pc, {}).forward(x), want, same_function_atol(want),
                    0.0);
}

}  // namespace
}  // namespace jointnas::compress
