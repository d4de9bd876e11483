// See f16_reference.h.
#include "f16_reference.h"

#include <ATen/ATen.h>

#include <cmath>

namespace jointnas::testing {

std::vector<model::LayerSpec> uniform_specs(const model::LlamaConfig& c, const std::string& format) {
  std::vector<model::LayerSpec> s = model::dense_layer_specs(c);
  for (model::LayerSpec& l : s) {
    for (int k = 0; k < model::kNumSlots; ++k) l.format_of(k) = format;
  }
  return s;
}

F16Reference f16_reference(model::Checkpoint& ck) {
  model::LlamaModel m32 = model::LlamaModel::from_checkpoint(ck, {});
  // The same embedding as the file's f16 one (in fp32: every tensor, as config.json must agree).
  for (auto& [n, t] : ck.tensors) {
    if (at::isFloatingType(t.scalar_type())) t = t.to(at::kFloat);
  }
  ck.config.torch_dtype = "float32";
  for (const char* n : {"model.embed_tokens.weight", "lm_head.weight"}) {
    if (ck.tensors.count(n)) ck.tensors[n] = ck.tensors[n].to(at::kHalf).to(at::kFloat);
  }
  model::LlamaModel m16 = model::LlamaModel::from_checkpoint(ck, {}, uniform_specs(ck.config, "f16"));
  // |W_out| |h| bounded by ||W_out row||_1 max|h|, from the f16 model's own tensors.
  const auto sd = m16.state_dict();
  const at::Tensor w_out = sd.count("lm_head.weight") ? sd.at("lm_head.weight") : sd.at("model.embed_tokens.weight");
  const double head_term = std::ldexp(1.0, -11) * w_out.abs().sum(1).max().item<double>() *
                           ck.tensors.at("model.norm.weight").abs().max().item<double>() *
                           std::sqrt(static_cast<double>(ck.config.hidden_size));
  return F16Reference{std::move(m32), std::move(m16), head_term};
}

}  // namespace jointnas::testing
