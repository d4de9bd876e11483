// arch.json; see arch_io.h.
#include "jointnas/search/arch_io.h"

#include <numeric>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"
#include "jointnas/search/decisions.h"

namespace jointnas::search {

Json arch_json(const CostContext& cc, const DnasResult& r, const Budget& b) {
  auto [cfg, specs] = arch_specs(*cc.config, *cc.space, r.arch, cc.block_rank);
  cfg.layer_specs = specs;
  Json idx = Json::object();
  Arch a = r.arch;
  for_each_decision(*cc.space, a, [&](Decision& d) { idx[d.name] = *d.index; });
  return Json{{"format", "jointnas-arch"},
              {"version", 1},
              {"architecture", r.arch.to_json(*cc.space)},
              {"indices", idx},
              {"argmax_before_repair", r.argmax.to_json(*cc.space)},
              {"repairs", r.repairs},
              {"block_rank", cc.block_rank},
              {"config", cfg.to_json()},
              {"predicted", r.predicted.to_json()},
              {"budget", b.to_json()},
              {"workload", cc.workload.to_json()},
              {"steps_run", r.steps_run},
              {"stop_reason", r.stop_reason}};
}

Arch arch_from_json(const Json& j, const SearchSpace& s, const std::string& src) {
  JNAS_CHECK_IO(has_format_tag(j, "jointnas-arch"),
                "{}: not a jointnas arch.json (expected \"format\": \"jointnas-arch\")", src);
  JNAS_CHECK_IO(j.contains("indices") && j["indices"].is_object(), "{}: 'indices' must be an object", src);
  Arch a = largest_arch(s);
  const Json& idx = j["indices"];
  for_each_decision(s, a, [&](Decision& d) {
    JNAS_CHECK_IO(idx.contains(d.name), "{}: indices lack '{}' (arch.json from another search space?)", src, d.name);
    const auto v = get_int(idx, d.name.c_str(), src);
    JNAS_CHECK_IO(v && *v >= 0 && *v < d.choices, "{}: '{}' must be an index in [0, {})", src, d.name, d.choices);
    *d.index = *v;
  });
  return a;
}

std::vector<int64_t> block_rank_from_arch_json(const Json& arch, int64_t layers, const std::string& src) {
  if (!arch.is_object() || !arch.contains("block_rank") || !arch["block_rank"].is_array() || arch["block_rank"].empty()) {
    return {};
  }
  std::vector<int64_t> r;
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(layers, 0)), false);
  for (const auto& v : arch["block_rank"]) {
    JNAS_CHECK_IO(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < layers,
                  "{}: block_rank entries must be in [0, {})", src, layers);
    JNAS_CHECK_IO(!seen[v.get<size_t>()], "{}: block_rank must be a permutation of 0..{}", src, layers - 1);
    seen[v.get<size_t>()] = true;
    r.push_back(v.get<int64_t>());
  }
  JNAS_CHECK_IO(static_cast<int64_t>(r.size()) == layers, "{}: block_rank lists {} blocks, the model has {}", src,
                r.size(), layers);
  return r;
}

namespace {

// One layer's choices from its spec, each size checked against the model.
LayerChoices layer_choices(const model::LayerSpec& sp, const model::LlamaConfig& m, size_t l, const std::string& src) {
  const int64_t group = m.num_attention_heads / m.num_key_value_heads;
  JNAS_CHECK_IO(sp.num_key_value_heads >= 1 && sp.num_key_value_heads <= m.num_key_value_heads &&
                    sp.num_attention_heads == sp.num_key_value_heads * group,
                "{}: layer {}: {} heads / {} KV heads do not cut whole KV groups of the model ({} heads / {} KV heads)",
                src, l, sp.num_attention_heads, sp.num_key_value_heads, m.num_attention_heads, m.num_key_value_heads);
  JNAS_CHECK_IO(sp.head_dim >= 2 && sp.head_dim <= m.head_dim && sp.head_dim % 2 == 0,
                "{}: layer {}: head_dim {} must be even and at most the model's {}", src, l, sp.head_dim, m.head_dim);
  JNAS_CHECK_IO(sp.intermediate_size >= 1 && sp.intermediate_size <= m.intermediate_size,
                "{}: layer {}: intermediate_size {} must be in [1, {}]", src, l, sp.intermediate_size,
                m.intermediate_size);
  LayerChoices lc;
  lc.kv_groups = {sp.num_key_value_heads};
  lc.head_dims = {sp.head_dim};
  lc.intermediate = {sp.intermediate_size};
  for (model::LinearSlot slot : model::kSlots) {
    const std::string& f = sp.format_of(static_cast<int>(model::slot_index(slot)));
    try {
      quant::find_format(f);
    } catch (const ConfigError& e) {
      throw IoError(fmt::format("{}: layer {}: {}", src, l, e.what()));
    }
    lc.formats[model::slot_index(slot)] = {f};
  }
  return lc;
}

}  // namespace

SearchSpace space_from_arch_json(const Json& arch, const model::LlamaConfig& m, const std::string& src) {
  JNAS_CHECK_IO(has_format_tag(arch, "jointnas-arch"),
                "{}: not a jointnas arch.json (expected \"format\": \"jointnas-arch\")", src);
  JNAS_CHECK_IO(arch.contains("config") && arch["config"].is_object(), "{}: no deployable 'config'", src);
  const model::LlamaConfig c = model::LlamaConfig::from_json(arch["config"], src + " (config)");
  JNAS_CHECK_IO(static_cast<int64_t>(c.layer_specs.size()) == m.num_hidden_layers,
                "{}: config lists {} layer specs, the model has {} layers", src, c.layer_specs.size(), m.num_hidden_layers);
  JNAS_CHECK_IO(c.hidden_size >= 1 && c.hidden_size <= m.hidden_size, "{}: hidden_size {} must be in [1, {}]", src,
                c.hidden_size, m.hidden_size);
  const std::vector<int64_t> rank = block_rank_from_arch_json(arch, m.num_hidden_layers, src);
  SearchSpace s = SearchSpace::dense(m);
  s.hidden = {c.hidden_size};
  int64_t kept = 0;
  for (size_t l = 0; l < c.layer_specs.size(); ++l) {
    s.layers[l] = layer_choices(c.layer_specs[l], m, l, src);
    kept += c.layer_specs[l].skip ? 0 : 1;
  }
  JNAS_CHECK_IO(kept >= 1, "{}: every block is dropped", src);
  s.depth = {kept};
  for (size_t l = 0; l < c.layer_specs.size(); ++l) {
    JNAS_CHECK_IO(block_kept(rank, static_cast<int64_t>(l), kept) == !c.layer_specs[l].skip,
                  "{}: layer {} is {} but the depth order keeps the {} most important blocks", src, l,
                  c.layer_specs[l].skip ? "dropped" : "kept", kept);
  }
  // Every format must slice on the supernet's grid (as SearchSpace::from_yaml checks).
  try {
    for (const auto& layer : s.layers) {
      for (int slot = 0; slot < kNumFormatSlots; ++slot) supernet_group(m, layer, slot, layer.formats[slot][0]);
      const int64_t g = quant::find_format(layer.formats[0][0]).group_for(m.hidden_size);
      JNAS_CHECK_CONFIG(g == m.hidden_size || c.hidden_size % g == 0, "hidden size {} is not a multiple of {}'s group {}",
                        c.hidden_size, layer.formats[0][0], g);
      const int64_t gi = quant::find_format(layer.formats[3][0]).group_for(m.intermediate_size);
      JNAS_CHECK_CONFIG(gi == m.intermediate_size || layer.intermediate[0] % gi == 0,
                        "intermediate size {} is not a multiple of {}'s group {}", layer.intermediate[0],
                        layer.formats[3][0], gi);
    }
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", src, e.what()));
  }
  return s;
}

Arch arch_in_space(const Json& arch, const model::LlamaConfig& m, const SearchSpace& space,
                   const std::vector<int64_t>& block_rank, const std::string& src) {
  SearchSpace one = space_from_arch_json(arch, m, src);
  auto order = [&](std::vector<int64_t> r) {  // empty: the identity
    if (r.empty()) {
      r.resize(static_cast<size_t>(m.num_hidden_layers));
      std::iota(r.begin(), r.end(), 0);
    }
    return r;
  };
  const std::vector<int64_t> its = block_rank_from_arch_json(arch, m.num_hidden_layers, src);
  const int64_t kept = one.depth.front();
  JNAS_CHECK_CONFIG(kept == m.num_hidden_layers || order(its) == order(block_rank),
                    "{}: its blocks were dropped in another depth order than this search's", src);
  try {
    return map_arch(one, first_arch(one), space);  // dropped blocks as they are: the same config.json
  } catch (const ConfigError&) {
    const SearchSpace largest = restrict_to(space, largest_arch(space));
    for (size_t l = 0; l < one.layers.size(); ++l) {
      if (!block_kept(its, static_cast<int64_t>(l), kept)) one.layers[l] = largest.layers[l];
    }
    return map_arch(one, first_arch(one), space);
  }
}

}  // namespace jointnas::search
