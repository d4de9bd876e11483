// Runtime numerics against independent references: llama2.c greedy ids, transformers logits
// (ref-17m, stories260K HF conversion, a llama3-rope model), and KV-cache consistency.
//
// Tolerances: fp32 logits vs transformers fp32 <= 1e-4 max abs (issue 2 acceptance). Both sides do
// the same math in fp32 but sum in different orders (SDPA, GEMM blocking); with |logit| < ~30 and
// K <= 1152 the accumulated rounding is ~K * 2^-24 * |x| ~ 1e-5, so 1e-4 leaves a 10x margin.
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/paths.h"

#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/generate.h"
#include "jointnas/model/llama.h"
#include "jointnas/model/safetensors.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

using namespace jointnas;
using namespace jointnas::model;
using jointnas::testing::fixture_path;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

namespace {

std::map<std::string, at::Tensor> read_goldens(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& [n, e] : f->entries()) out[n] = tensor_from_entry(f, e).clone();
  return out;
}

std::vector<int64_t> read_ids(const std::string& path) {
  std::ifstream in(path);
  std::vector<int64_t> ids;
  int64_t x;
  while (in >> x) ids.push_back(x);
  return ids;
}

}  // namespace

TEST(LlamaRuntime, Stories260KGreedyMatchesLlama2c) {
  const auto expected = read_ids(repo_path("models/stories260K/expected_greedy_ids.txt"));
  ASSERT_EQ(expected.size(), 256u);
  for (const char* file : {"stories260K.bin", "stories260K_v1.bin"}) {
    Checkpoint ck = load_checkpoint(repo_path(std::string("models/stories260K/") + file));
    LlamaModel m = LlamaModel::from_checkpoint(ck, {});
    GenerateOptions g;
    g.max_new_tokens = 256;
    GenerateResult r = generate(m, {1}, g);
    EXPECT_EQ(r.ids, expected) << file;
  }
}

TEST(LlamaRuntime, Ref17mMatchesGoldenLogits) {
  const std::string dir = shared_path("models/ref-17m");
  JNAS_REQUIRE_FILE(dir + "/golden_logits.safetensors");
  auto g = read_goldens(dir + "/golden_logits.safetensors");
  LlamaModel m = LlamaModel::from_checkpoint(load_checkpoint(dir), {});
  at::Tensor logits = m.forward(g.at("input_ids"));
  JNAS_EXPECT_CLOSE(logits, g.at("logits"), 1e-4, 0.0);
}

TEST(LlamaRuntime, Ref17mBf16ArgmaxAgrees) {
  // bf16 weights + activations: logits move by ~1e-2 relative, so only argmax is compared; the
  // issue asks >= 99% agreement (on the GPU; the CPU bf16 path is held to the same bar).
  const std::string dir = shared_path("models/ref-17m");
  JNAS_REQUIRE_FILE(dir + "/golden_logits.safetensors");
  auto g = read_goldens(dir + "/golden_logits.safetensors");
  RuntimeOptions o;
  o.dtype = at::kBFloat16;
  LlamaModel m = LlamaModel::from_checkpoint(load_checkpoint(dir), o);
  at::Tensor agree = m.forward(g.at("input_ids")).argmax(-1).eq(g.at("logits").argmax(-1));
  EXPECT_GE(agree.to(at::kDouble).mean().item<double>(), 0.99);
}

TEST(LlamaRuntime, Stories260KHfConversionMatchesTransformers) {
  auto g = read_goldens(fixture_path("model/stories260K_hf_logits.safetensors"));
  // Direct llama2.c load, and the HF directory `convert` writes, both against transformers.
  Checkpoint ck = load_checkpoint(repo_path("models/stories260K/stories260K.bin"));
  fs::path out = fs::temp_directory_path() / "jnas_stories_hf";
  jointnas::remove_tree(fs::path(out).string());
  save_hf_directory(ck, out.string(), "float32");
  for (const std::string& path : {repo_path("models/stories260K/stories260K.bin"), out.string()}) {
    LlamaModel m = LlamaModel::from_checkpoint(load_checkpoint(path), {});
    JNAS_EXPECT_CLOSE(m.forward(g.at("input_ids")), g.at("logits"), 1e-4, 0.0);
  }
}

TEST(LlamaRuntime, Llama3RopeShardedModelMatchesTransformers) {
  auto g = read_goldens(fixture_path("model/tiny_llama3_logits.safetensors"));
  LlamaModel m = LlamaModel::from_checkpoint(load_checkpoint(fixture_path("model/tiny_llama3")), {});
  JNAS_EXPECT_CLOSE(m.forward(g.at("input_ids")), g.at("logits"), 1e-4, 0.0);
}

TEST(LlamaRuntime, Llama3InverseFrequenciesMatchTransformers) {
  auto cfg = LlamaConfig::from_file(repo_path("configs/llama-3.1-8b.json"));
  Json j = read_json_file(fixture_path("model/rope_llama3_inv_freq.json"));
  at::Tensor expected = at::tensor(j["inv_freq"].get<std::vector<double>>(), at::kDouble);
  at::Tensor got = rope_inv_freq(cfg.head_dim, cfg.rope.rope_theta, cfg.rope);
  // Same fp32 formula; 1e-6 relative covers pow/division rounding differences.
  JNAS_EXPECT_CLOSE(got, expected, 0.0, 1e-6);
}

TEST(LlamaRuntime, KvCacheMatchesFullForward) {
  for (bool tied : {false, true}) {
    LlamaModel m = LlamaModel::from_checkpoint(jointnas::testing::tiny_llama_checkpoint(3, tied), {});
    at::Tensor ids = at::randint(0, 97, {2, 40}, at::kLong);
    at::Tensor full = m.forward(ids);
    KVCache cache = m.new_cache(2, 64);
    // Prefill 17, a chunk of 5 (mask with an offset), then one token at a time.
    std::vector<at::Tensor> parts{m.forward(ids.narrow(1, 0, 17), &cache),
                                  m.forward(ids.narrow(1, 17, 5), &cache)};
    for (int64_t t = 22; t < 40; ++t) parts.push_back(m.forward(ids.narrow(1, t, 1), &cache));
    EXPECT_EQ(cache.length, 40);
    // Same fp32 math over a different split of the keys: rounding only (1e-5 on O(1) logits).
    JNAS_EXPECT_CLOSE(at::cat(parts, 1), full, 1e-5, 0.0);
  }
}

TEST(LlamaRuntime, SkippedBlocksAreIdentity) {
  Checkpoint ck = jointnas::testing::tiny_llama_checkpoint(4);
  auto specs = dense_layer_specs(ck.config);
  for (auto& s : specs) s.skip = true;
  LlamaModel m = LlamaModel::from_checkpoint(ck, {}, specs);
  at::Tensor ids = at::randint(0, 97, {1, 9}, at::kLong);
  // With every block skipped the model is lm_head(norm(embed(ids))).
  at::Tensor x = at::embedding(ck.tensors.at("model.embed_tokens.weight"), ids);
  at::Tensor n = x * at::rsqrt(x.pow(2).mean(-1, true) + ck.config.rms_norm_eps) *
                 ck.tensors.at("model.norm.weight");
  JNAS_EXPECT_CLOSE(m.forward(ids), at::linear(n, ck.tensors.at("lm_head.weight")), 1e-5, 0.0);
}

TEST(LlamaRuntime, RejectsOutOfRangeTokens) {
  LlamaModel m = LlamaModel::from_checkpoint(jointnas::testing::tiny_llama_checkpoint(), {});
  EXPECT_THROW(m.forward(at::full({1, 3}, 97, at::kLong)), jointnas::ConfigError);
  EXPECT_THROW(m.forward(at::full({1, 3}, -1, at::kLong)), jointnas::ConfigError);
  EXPECT_THROW(m.forward(at::zeros({1, 129}, at::kLong)), jointnas::ConfigError);
}
