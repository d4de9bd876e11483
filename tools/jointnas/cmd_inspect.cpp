// `jointnas inspect MODEL`: config, parameter count and bytes by module.
#include <iostream>
#include <map>
#include <regex>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/search/space.h"

namespace jointnas::cli {
namespace {

struct InspectFlags {
  std::string model;
  std::string space;  // search-space YAML: print its size and extremes too
  std::string device = "cuda";
  std::string format = "text";
};

// Logical parameters of an architecture (embedding, kept blocks, norms, head).
int64_t arch_params(const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs) {
  const int64_t h = c.hidden_size;
  int64_t n = c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2) + h;
  for (const auto& s : specs) {
    if (s.skip) continue;
    const int64_t q = s.num_attention_heads * s.head_dim, kv = s.num_key_value_heads * s.head_dim;
    n += (q + 2 * kv) * h + h * q + 3 * h * s.intermediate_size + 2 * h;
  }
  return n;
}

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
  search::SearchSpace space;
  search::Arch extremes[2];
  if (!f.space.empty()) {
    space = search::SearchSpace::from_yaml_file(f.space, c, f.device);
    extremes[0] = search::smallest_arch(space, c);
    extremes[1] = search::largest_arch(space);
    Json sj;
    sj["file"] = f.space;
    sj["log10_architectures"] = space.log10_num_architectures();
    const char* names[2] = {"smallest", "largest"};
    for (int i = 0; i < 2; ++i) {
      auto [cfg, specs] = search::arch_specs(c, space, extremes[i], {});
      sj[names[i]] = extremes[i].to_json(space);
      sj[names[i]]["params"] = arch_params(cfg, specs);
    }
    j["search_space"] = sj;
  }
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
    if (j.contains("search_space")) {
      const Json& sj = j["search_space"];
      std::cout << fmt::format("\nsearch space {}: 10^{:.1f} architectures\n", f.space,
                               sj["log10_architectures"].get<double>());
      for (const char* name : {"smallest", "largest"}) {
        const Json& a = sj[name];
        const Json& l0 = a["layers"][0];
        std::cout << fmt::format("{:<9} hidden {} | depth {} | layer 0: kv groups {}, head_dim {}, MLP {}, "
                                 "formats {} | {:.2f} M params\n",
                                 name, a["hidden"].get<int64_t>(), a["depth"].get<int64_t>(),
                                 l0["kv_groups"].get<int64_t>(), l0["head_dim"].get<int64_t>(),
                                 l0["intermediate"].get<int64_t>(), l0["formats"].dump(),
                                 a["params"].get<int64_t>() / 1e6);
      }
    }
  });
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto f = std::make_shared<InspectFlags>();
  auto* sub = app.add_subcommand("inspect", "Print a model's config, parameter count and bytes by module");
  sub->add_option("model", f->model, "HF model directory or llama2.c .bin")->required();
  sub->add_option("--space", f->space, "search-space YAML (docs/search.md): also print its size and extremes");
  sub->add_option("--device", f->device, "target device for the default formats (cpu, cuda)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  add_format_flag(sub, f->format);
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
