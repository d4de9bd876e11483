// `jointnas inspect MODEL`: config, parameter count and bytes by module.
#include <iostream>
#include <map>
#include <regex>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/model/checkpoint.h"

namespace jointnas::cli {
namespace {

struct InspectFlags {
  std::string model;
  std::string format = "text";
};

// "model.layers.3.mlp.up_proj.weight" -> "layers.3.mlp"; embed / norm / lm_head kept as is.
std::string module_of(const std::string& name) {
  static const std::regex layer(R"(^model\.layers\.(\d+)\.(self_attn|mlp|input_layernorm|post_attention_layernorm)\b.*)");
  std::smatch m;
  if (std::regex_match(name, m, layer)) {
    std::string part = m[2];
    if (part != "self_attn" && part != "mlp") part = "norms";
    return "layers." + std::string(m[1]) + "." + part;
  }
  if (name.rfind("model.embed_tokens", 0) == 0) return "embed_tokens";
  if (name.rfind("model.norm", 0) == 0) return "norm";
  if (name.rfind("lm_head", 0) == 0) return "lm_head";
  return "other";
}

void run(const InspectFlags& f) {
  model::Checkpoint ck = model::load_checkpoint(f.model);
  const auto& c = ck.config;
  std::map<std::string, std::pair<int64_t, int64_t>> by_module;  // params, bytes
  int64_t params = 0, bytes = 0;
  for (const auto& [name, t] : ck.tensors) {
    // A tied checkpoint may still carry lm_head.weight; transformers ignores it, so do we.
    if (c.tie_word_embeddings && name == "lm_head.weight") continue;
    auto& e = by_module[module_of(name)];
    e.first += t.numel();
    e.second += t.numel() * static_cast<int64_t>(t.element_size());
    params += t.numel();
    bytes += t.numel() * static_cast<int64_t>(t.element_size());
  }
  Json j;
  j["path"] = f.model;
  j["format"] = ck.format;
  j["config"] = c.to_json();
  j["params"] = params;
  j["bytes"] = bytes;
  j["tensors"] = ck.tensors.size();
  Json mods = Json::object();
  for (const auto& [m, pb] : by_module) mods[m] = {{"params", pb.first}, {"bytes", pb.second}};
  j["modules"] = mods;
  emit(f.format, j, [&] {
    std::cout << fmt::format("model    {} ({})\n", f.model, ck.format);
    std::cout << fmt::format("shape    hidden {} | intermediate {} | layers {} | heads {} / kv {} | "
                             "head_dim {} | vocab {} | tied {}\n",
                             c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                             c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.vocab_size,
                             c.tie_word_embeddings);
    std::cout << fmt::format("rope     {} theta {} | max positions {} | eps {} | dtype {}\n",
                             c.rope.rope_type, c.rope.rope_theta, c.max_position_embeddings,
                             c.rms_norm_eps, c.torch_dtype);
    std::cout << fmt::format("params   {} ({:.2f} M), {:.2f} MiB in {} tensors\n\n", params,
                             params / 1e6, bytes / 1048576.0, ck.tensors.size());
    std::cout << fmt::format("{:<22} {:>14} {:>12}\n", "module", "params", "MiB");
    for (const auto& [m, pb] : by_module) {
      std::cout << fmt::format("{:<22} {:>14} {:>12.3f}\n", m, pb.first, pb.second / 1048576.0);
    }
  });
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto f = std::make_shared<InspectFlags>();
  auto* sub = app.add_subcommand("inspect", "Print a model's config, parameter count and bytes by module");
  sub->add_option("model", f->model, "HF model directory or llama2.c .bin")->required();
  add_format_flag(sub, f->format);
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
