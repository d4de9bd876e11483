// The JSON cost-space description (`jointnas profile --space FILE.json`, profile/cost_space.h):
// defaults from the model, per-layer lists, and a ConfigError naming the key for each bad value.
#include <string>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/profile/cost_space.h"

namespace jointnas::profile {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 64;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 12;
  return c;
}

TEST(CostSpaceJson, EmptyObjectIsTheDenseModel) {
  const CostSpace s = cost_space_from_json(Json::object(), config(), "(dense)");
  ASSERT_EQ(s.hidden, std::vector<int64_t>{48});
  ASSERT_EQ(s.layers.size(), 2u);
  for (const LayerSpace& l : s.layers) {
    ASSERT_EQ(l.attention.size(), 1u);
    EXPECT_EQ(l.attention[0], (AttnChoice{4, 2, 12, 0}));
    EXPECT_EQ(l.intermediate, std::vector<int64_t>{96});
    for (const auto* f : {&l.formats_qkv, &l.formats_o, &l.formats_gate_up, &l.formats_down}) {
      EXPECT_EQ(*f, std::vector<std::string>{"bf16"});
    }
    EXPECT_FALSE(l.can_skip);
  }
}

TEST(CostSpaceJson, OneObjectForAllLayersOrOnePerLayer) {
  const Json shared = parse_json(R"({"hidden": [32, 48], "kv_heads": 1, "head_dim": 8,
      "layers": {"heads": [2, 4], "intermediate": [16, 32], "formats": ["w8a16", "bf16"], "can_skip": true}})",
                                 "s.json");
  const CostSpace s = cost_space_from_json(shared, config(), "s.json");
  EXPECT_EQ(s.hidden, (std::vector<int64_t>{32, 48}));
  ASSERT_EQ(s.layers.size(), 2u);
  for (const LayerSpace& l : s.layers) {
    EXPECT_EQ(l.attention, (std::vector<AttnChoice>{{2, 1, 8, 0}, {4, 1, 8, 0}}));
    EXPECT_EQ(l.intermediate, (std::vector<int64_t>{16, 32}));
    EXPECT_EQ(l.formats_down, (std::vector<std::string>{"w8a16", "bf16"}));
    EXPECT_TRUE(l.can_skip);
  }
  const Json per_layer = parse_json(R"({"layers": [{"heads": [4]}, {"intermediate": [48], "can_skip": true}]})", "p");
  const CostSpace p = cost_space_from_json(per_layer, config(), "p");
  ASSERT_EQ(p.layers.size(), 2u);
  EXPECT_EQ(p.layers[0].intermediate, std::vector<int64_t>{96});
  EXPECT_FALSE(p.layers[0].can_skip);
  EXPECT_EQ(p.layers[1].intermediate, std::vector<int64_t>{48});
  EXPECT_EQ(p.layers[1].attention, (std::vector<AttnChoice>{{4, 2, 12, 0}}));
  EXPECT_TRUE(p.layers[1].can_skip);
}

TEST(CostSpaceJson, BadValuesAreConfigErrorsNamingTheKey) {
  const model::LlamaConfig c = config();
  auto expect_error = [&](const char* text, const char* needle) {
    try {
      cost_space_from_json(parse_json(text, "bad.json"), c, "bad.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << text << ": " << m;
    }
  };
  expect_error(R"([1, 2])", "object");
  expect_error(R"({"hidden": [0]})", "hidden");
  expect_error(R"({"hidden": []})", "hidden");
  expect_error(R"({"hidden": "48"})", "hidden");
  expect_error(R"({"kv_heads": 0})", "kv_heads");
  expect_error(R"({"layers": {"heads": [2.5]}})", "heads");
  expect_error(R"({"layers": {"formats": [4]}})", "formats");
  expect_error(R"({"layers": {"formats": []}})", "formats");
  expect_error(R"({"layers": {"can_skip": "yes"}})", "can_skip");
  expect_error(R"({"layers": [{}, {}, {}]})", "layers");
  expect_error(R"({"layers": [{}, 3]})", "layers");
  // An unknown format is the registry's error, which lists the known names.
  EXPECT_THROW(cost_space_from_json(parse_json(R"({"layers": {"formats": ["w3"]}})", "f"), c, "f"), ConfigError);
}

}  // namespace
}  // namespace jointnas::profile
