// SearchSpace: YAML parsing, validation against the model and the quantization groups, counting.
#include <cmath>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/search/space.h"
#include "tensor_assert.h"

namespace jointnas::search {
namespace {

// Llama-3.1-8B's own config.json, cut to 4 layers.
model::LlamaConfig config_8b_like() {
  model::LlamaConfig c = model::LlamaConfig::from_file(testing::repo_path("configs/llama-3.1-8b.json"));
  c.num_hidden_layers = 4;
  return c;
}

TEST(SearchSpace, ParsesFractionsSizesAndDefaults) {
  const auto c = config_8b_like();
  const auto s = SearchSpace::from_yaml(R"(
search_space:
  hidden: {choices: [0.5, 0.75, 1.0]}
  depth: {min: 3}
  layers:
    heads: {choices: [0.5, 1.0]}
    head_dim: [64, 128]
    intermediate: {choices: [0.25, 0.5, 1.0]}
  formats: [bf16, w4a16_g128, fp8_e4m3]
)", c, "<test>");
  EXPECT_EQ(s.hidden, (std::vector<int64_t>{2048, 3072, 4096}));
  EXPECT_EQ(s.depth, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(s.group_size, 4);
  ASSERT_EQ(s.layers.size(), 4u);
  EXPECT_EQ(s.layers[0].kv_groups, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(s.layers[0].head_dims, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(s.layers[0].intermediate, (std::vector<int64_t>{3584, 7168, 14336}));
  EXPECT_EQ(s.layers[0].formats[1].size(), 3u);
  // o_proj groups stay inside a 64-wide head prefix.
  EXPECT_EQ(supernet_group(c, s.layers[0], 1, "w4a16_g128"), 64);
  EXPECT_EQ(supernet_group(c, s.layers[0], 0, "w4a16_g128"), 128);
  // count: 3 hidden x (per-layer^3 + per-layer^4), per layer 2*2*3*3^4 = 972
  const double per = 2 * 2 * 3 * 81;
  EXPECT_NEAR(s.log10_num_architectures(), std::log10(3 * (std::pow(per, 3) + std::pow(per, 4))), 1e-9);
}

TEST(SearchSpace, DefaultFormatsAreThoseWithAFastKernelOnTheDevice) {
  const auto c = config_8b_like();
  const char* yaml = "search_space:\n  hidden: [4096]\n";
  const auto on_cuda = SearchSpace::from_yaml(yaml, c, "<test>", "cuda");
  const auto on_cpu = SearchSpace::from_yaml(yaml, c, "<test>", "cpu");
  const std::vector<std::string> all{"bf16", "w8a16", "w4a16_g128", "w8a8", "fp8_e4m3"};
  EXPECT_EQ(on_cuda.layers[0].formats[0], all);
  // fp8 on the CPU is an emulation (20x to 40x bf16): in the default space its share of the
  // expected latency crushed every width in issue 8's CPU study.
  EXPECT_EQ(on_cpu.layers[0].formats[0], (std::vector<std::string>{"bf16", "w8a16", "w4a16_g128", "w8a8"}));
  // A space that names it gets it.
  const auto named = SearchSpace::from_yaml("search_space:\n  hidden: [4096]\n  formats: [bf16, fp8_e4m3]\n", c,
                                            "<test>", "cpu");
  EXPECT_EQ(named.layers[0].formats[0], (std::vector<std::string>{"bf16", "fp8_e4m3"}));
}

TEST(SearchSpace, RejectsWidthsThatCutAQuantizationGroup) {
  const auto c = config_8b_like();
  EXPECT_THROW(SearchSpace::from_yaml("hidden: [4000]\nmultiple_of: 8\n", c, "<t>"), ConfigError);
  EXPECT_THROW(SearchSpace::from_yaml("hidden: [5000]", c, "<t>"), ConfigError);
  EXPECT_THROW(SearchSpace::from_yaml("formats: [int3]", c, "<t>"), ConfigError);
  EXPECT_THROW(SearchSpace::from_yaml("hidden: [oops]", c, "<t>"), ConfigError);
  EXPECT_THROW(SearchSpace::from_yaml("hidden: [", c, "<t>"), ConfigError);
  EXPECT_THROW(SearchSpace::from_yaml("layers: {head_dim: [48, 128]}\nformats: [w4a16_g128]", c, "<t>"),
               ConfigError);  // no group of >= 32 divides a 48-wide head in o_proj... 48 % 32 != 0
}

// ggml's block formats cannot fall back to a smaller group: a width choice that is not a whole
// number of blocks is refused when the space is read, naming the layer, the slot and the width
// (it used to fail later, in training or in the GGUF export).
TEST(SearchSpace, GgmlFormatsNeedWholeBlocksAtEveryWidthChoice) {
  const auto c = config_8b_like();  // hidden 4096, 32 heads of 128, 8 KV heads, MLP 14336
  // q4_k (blocks of 256): hidden 4096 and MLP 7168 / 14336 are whole blocks; 32 x 128 too.
  EXPECT_NO_THROW(SearchSpace::from_yaml("multiple_of: 32\nlayers: {intermediate: [7168, 14336]}\nformats: [bf16, q4_k]", c, "<t>"));
  // An MLP width of 7200 is not: the down slot (its input) cannot take q4_k.
  try {
    SearchSpace::from_yaml("multiple_of: 32\nlayers: {intermediate: [7200, 14336]}\nformats: [bf16, q4_k]", c, "<t>");
    ADD_FAILURE() << "an MLP width of 7200 with q4_k was accepted";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("layer 0"), std::string::npos) << m;
    EXPECT_NE(m.find("q4_k"), std::string::npos) << m;
    EXPECT_NE(m.find("down"), std::string::npos) << m;
    EXPECT_NE(m.find("7200"), std::string::npos) << m;
    EXPECT_NE(e.hint().find("multiples of 256"), std::string::npos) << e.hint();
  }
  // The same width in q8_0 (blocks of 32): 7200 = 225 x 32 is fine.
  EXPECT_NO_THROW(SearchSpace::from_yaml("multiple_of: 32\nlayers: {intermediate: [7200, 14336]}\nformats: [bf16, q8_0]", c, "<t>"));
  // o_proj's input is KV groups x 4 query heads x head size: 8 x 4 x 128 is whole blocks; head
  // size 40 with 4 or 8 groups gives 640 and 1280, not whole blocks of 256.
  EXPECT_NO_THROW(SearchSpace::from_yaml("layers: {head_dim: [128], formats_o: [bf16, q4_k]}", c, "<t>"));
  std::string o_message;
  try {
    SearchSpace::from_yaml("layers: {head_dim: [40, 128], heads: {choices: [0.5, 1.0]}}\nformats: [bf16, q4_k]", c, "<t>");
  } catch (const ConfigError& e) {
    o_message = e.what();
  }
  EXPECT_NE(o_message.find("attention width (heads x head size) 640"), std::string::npos) << o_message;
  // Only the slot that names the format is checked: q4_k on qkv alone (hidden 4096), MLP 7200 in q8_0.
  EXPECT_NO_THROW(SearchSpace::from_yaml("multiple_of: 32\nlayers: {intermediate: [7200, 14336], formats_qkv: [bf16, q4_k]}\nformats: [bf16, q8_0]", c, "<t>"));
}

TEST(SearchSpace, ArchSpecsKeepRopeFrequenciesAndScoreScale) {
  const auto c = config_8b_like();
  const auto s = SearchSpace::from_yaml("layers: {head_dim: [64, 128]}\ndepth: [3, 4]", c, "<t>");
  Arch a = smallest_arch(s, c);
  auto [cfg, specs] = arch_specs(c, s, a, {3, 2, 1, 0});
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_TRUE(specs[0].skip);  // rank 3 is dropped first at depth 3
  EXPECT_FALSE(specs[3].skip);
  EXPECT_EQ(specs[1].head_dim, 64);
  EXPECT_NEAR(specs[1].rope_theta, std::pow(500000.0, 0.5), 1e-6);
  EXPECT_NEAR(specs[1].attention_scale, 1.0 / std::sqrt(128.0), 1e-15);
  Arch big = largest_arch(s);
  auto [cfg2, specs2] = arch_specs(c, s, big, {});
  EXPECT_EQ(specs2[0].attention_scale, 0.0);
  EXPECT_EQ(specs2[0].format_qkv, "bf16");
}

}  // namespace
}  // namespace jointnas::search

namespace jointnas::search {
namespace {
// `1` is a size (one KV group), `1.0` a fraction (all of them).
TEST(SearchSpace, IntegersAreSizesDecimalsAreFractions) {
  model::LlamaConfig c = config_8b_like();
  EXPECT_EQ(SearchSpace::from_yaml("layers: {heads: [1, 2]}", c, "<t>").layers[0].kv_groups,
            (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(SearchSpace::from_yaml("layers: {heads: [0.25, 1.0]}", c, "<t>").layers[0].kv_groups,
            (std::vector<int64_t>{2, 8}));
  EXPECT_THROW(SearchSpace::from_yaml("hidden: [1.5]", c, "<t>"), ConfigError);
}

// Found by fuzz/fuzz_space_yaml: an integer choice beyond int64 (heads: [8888...4], 8.9e38) was
// cast from double before the size check, undefined behaviour (UBSan report); now a ConfigError.
TEST(SearchSpace, HugeIntegerChoicesAreErrors) {
  model::LlamaConfig c = config_8b_like();
  for (const char* y : {"layers: {heads: [2, 888888888888888888888888888888888888884]}",
                        "hidden: [99999999999999999999]", "layers: {intermediate: [1e300]}"}) {
    EXPECT_THROW(SearchSpace::from_yaml(y, c, "<t>"), ConfigError) << y;
  }
}
}  // namespace
}  // namespace jointnas::search

namespace jointnas::search {
namespace {

TEST(SearchSpace, SubSpacesOfTheBaselinesMapBackByValue) {
  model::LlamaConfig c = model::LlamaConfig::from_file(testing::repo_path("configs/llama-3.1-8b.json"));
  c.num_hidden_layers = 3;
  const auto full = SearchSpace::from_yaml(
      "hidden: [2048, 4096]\ndepth: [2, 3]\nlayers: {heads: [4, 8], intermediate: [7168, 14336]}\n"
      "formats: [bf16, w8a16, w4a16_g128]", c, "<t>");
  // Architecture only: bf16 everywhere, the structure untouched.
  const SearchSpace bf = restrict_formats(full, {"bf16"});
  for (const auto& l : bf.layers) {
    for (const auto& f : l.formats) EXPECT_EQ(f, std::vector<std::string>{"bf16"});
    EXPECT_EQ(l.intermediate, full.layers[0].intermediate);
  }
  EXPECT_THROW(restrict_formats(full, {"fp8_e4m3"}), ConfigError);  // no slot keeps a format

  // Precision only: every structural list cut to one arch's values, formats whole.
  Arch a = largest_arch(full);
  a.hidden = 0, a.depth = 0, a.intermediate[1] = 0, a.kv_groups[2] = 0;
  a.formats[0] = {2, 1, 0, 2};
  const SearchSpace fx = fix_structure(full, a);
  EXPECT_EQ(fx.hidden, std::vector<int64_t>{2048});
  EXPECT_EQ(fx.depth, std::vector<int64_t>{2});
  EXPECT_EQ(fx.layers[1].intermediate, std::vector<int64_t>{7168});
  EXPECT_EQ(fx.layers[2].kv_groups, std::vector<int64_t>{full.layers[2].kv_groups[0]});
  EXPECT_EQ(fx.layers[0].formats[0], full.layers[0].formats[0]);

  // Round trips: an architecture of a sub-space is the same values in the whole space.
  const Arch in_fx = map_arch(full, a, fx);
  EXPECT_EQ(in_fx.hidden, 0);
  EXPECT_EQ(in_fx.formats[0], (std::array<int64_t, 4>{2, 1, 0, 2}));
  const Arch back = map_arch(fx, in_fx, full);
  EXPECT_EQ(back.to_json(full), a.to_json(full));
  Arch b = first_arch(bf);
  b.hidden = 1, b.depth = 1;
  const Arch b_full = map_arch(bf, b, full);
  EXPECT_EQ(b_full.to_json(full), b.to_json(bf));
  // A value the target lacks is a ConfigError naming it.
  try {
    map_arch(full, a, bf);
    FAIL() << "w4a16_g128 is not in the bf16 space";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 0 qkv"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace jointnas::search
