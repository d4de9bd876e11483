// Model-level quantization (issue 3): packed checkpoints round-trip bitwise, float checkpoints
// with a requested format quantize at load, bad packed tensors are IoErrors, and GPTQ beats
// round-to-nearest on the model's own outputs.
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

namespace jointnas::compress {
namespace {
namespace fs = std::filesystem;
using model::LlamaModel;

fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_compress_" + name);
  remove_tree(d.string());
  return d;
}

at::Tensor ids(int64_t b, int64_t t, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, 97, {b, t}, at::kLong);
}

model::Checkpoint to_checkpoint(const LlamaModel& m) {
  model::Checkpoint ck;
  ck.config = m.config();
  ck.config.layer_specs = m.specs();
  ck.tensors = m.state_dict();
  return ck;
}

// A mixed plan: every format appears, in every slot.
QuantizePlan mixed_plan() {
  QuantizePlan p;
  p.formats = {{"w8a8", "w4a16_g128", "fp8_e4m3", "w8a16"},
               {"w4a16_g128", "fp8_e4m3", "w8a16", "w8a8"},
               {"bf16", "w8a16", "w4a16_g128", "fp8_e4m3"}};
  return p;
}

TEST(QuantizeModel, PackedCheckpointRoundTripsBitwise) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(1);
  LlamaModel m = LlamaModel::from_checkpoint(ck, {});
  const QuantizeReport rep = quantize_model(m, mixed_plan());
  EXPECT_LT(rep.bytes_after, rep.bytes_before);
  EXPECT_EQ(m.specs()[1].format_qkv, "w4a16_g128");
  const fs::path d = scratch("roundtrip");
  model::save_hf_directory(to_checkpoint(m), d.string(), "float32");
  const model::Checkpoint back = model::load_checkpoint(d.string());
  ASSERT_EQ(back.config.layer_specs.size(), 3u);
  EXPECT_EQ(back.config.layer_specs[2].format_down, "fp8_e4m3");
  const LlamaModel m2 = LlamaModel::from_checkpoint(back, {});
  EXPECT_EQ(m2.weight_bytes(), m.weight_bytes());
  EXPECT_EQ(m2.num_parameters(), LlamaModel::from_checkpoint(ck, {}).num_parameters());
  const at::Tensor x = ids(2, 12, 5);
  EXPECT_TRUE(at::equal(m2.forward(x), m.forward(x)));
}

TEST(QuantizeModel, FloatCheckpointWithRequestedFormatsQuantizesAtLoad) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(2);
  LlamaModel rtn = LlamaModel::from_checkpoint(ck, {});
  quantize_model(rtn, mixed_plan());
  const LlamaModel at_load = LlamaModel::from_checkpoint(ck, {}, rtn.specs());
  const at::Tensor x = ids(1, 9, 6);
  EXPECT_TRUE(at::equal(at_load.forward(x), rtn.forward(x)));
}

TEST(QuantizeModel, BadPackedTensorsAreIoErrors) {
  LlamaModel m = LlamaModel::from_checkpoint(testing::tiny_llama_checkpoint(3), {});
  quantize_model(m, uniform_plan(3, "w4a16_g128"));
  model::Checkpoint ck = to_checkpoint(m);
  ck.config_source = "test";
  for (auto& [name, t] : ck.tensors) ck.tensor_source[name] = "test.safetensors";
  {
    model::Checkpoint bad = ck;
    bad.tensors.erase("model.layers.1.mlp.up_proj.weight_zero");
    EXPECT_THROW(LlamaModel::from_checkpoint(bad, {}), IoError);
  }
  {
    model::Checkpoint bad = ck;
    at::Tensor& s = bad.tensors["model.layers.0.self_attn.o_proj.weight_scale"];
    s = s.to(at::kFloat);  // the format stores bf16 scales
    EXPECT_THROW(LlamaModel::from_checkpoint(bad, {}), IoError);
  }
  {
    model::Checkpoint bad = ck;
    at::Tensor& w = bad.tensors["model.layers.2.mlp.down_proj.weight"];
    w = w.narrow(1, 0, w.size(1) - 1);  // wrong packed width
    EXPECT_THROW(LlamaModel::from_checkpoint(bad, {}), IoError);
  }
  EXPECT_THROW(quantize_model(m, uniform_plan(3, "w8a8")), ConfigError);  // already quantized
}

TEST(QuantizeModel, PlanFromJsonChecksNamesAndLength) {
  const QuantizePlan p = plan_from_json(Json::parse(R"([{"qkv": "w8a8"}, {}, {"down": "bf16"}])"),
                                        3, "w4a16_g128", "plan.json");
  EXPECT_EQ(p.formats[0][0], "w8a8");
  EXPECT_EQ(p.formats[0][1], "w4a16_g128");
  EXPECT_EQ(p.formats[2][3], "bf16");
  EXPECT_THROW(plan_from_json(Json::parse("[{}]"), 3, "bf16", "p"), ConfigError);
  EXPECT_THROW(plan_from_json(Json::parse(R"([{"qkv": "int3"}, {}, {}])"), 3, "bf16", "p"), ConfigError);
  EXPECT_THROW(plan_from_json(Json::parse(R"([{"attn": "w8a8"}, {}, {}])"), 3, "bf16", "p"), ConfigError);
}

// GPTQ minimises each layer's output error on calibration data, so on held-out windows of the
// same distribution the quantized model's logits must be closer to the float model's than RTN's.
TEST(QuantizeModel, GptqBeatsRoundToNearestOnModelOutputs) {
  const model::Checkpoint ck = testing::tiny_llama_checkpoint(4);
  const LlamaModel ref = LlamaModel::from_checkpoint(ck, {});
  const at::Tensor calib = ids(32, 32, 7), held_out = ids(8, 32, 8);
  const at::Tensor target = ref.forward(held_out);
  auto err = [&](const LlamaModel& m) { return (m.forward(held_out) - target).pow(2).mean().item<double>(); };
  for (const char* f : {"w4a16_g128", "w8a16"}) {
    LlamaModel rtn = LlamaModel::from_checkpoint(ck, {});
    quantize_model(rtn, uniform_plan(3, f));
    LlamaModel gptq = LlamaModel::from_checkpoint(ck, {});
    QuantizePlan plan = uniform_plan(3, f);
    plan.method = "gptq";
    const QuantizeReport rep = quantize_model(gptq, plan, calib);
    EXPECT_EQ(rep.linears[0].method, "gptq");
    EXPECT_EQ(rep.calibration_tokens, 32 * 32);
    EXPECT_LT(err(gptq), err(rtn)) << f;
  }
  LlamaModel m = LlamaModel::from_checkpoint(ck, {});
  QuantizePlan plan = uniform_plan(3, "w4a16_g128");
  plan.method = "gptq";
  EXPECT_THROW(quantize_model(m, plan), ConfigError);  // no calibration windows
}

}  // namespace
}  // namespace jointnas::compress
