// Cost spaces (see cost_space.h): random selections, the architecture a selection picks, and the
// JSON cost-space description.
#include "jointnas/profile/cost_space.h"

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"

namespace jointnas::profile {

Selection random_selection(const CostSpace& sp, std::mt19937_64& rng, double drop_probability) {
  auto pick = [&](size_t n) { return static_cast<int64_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  std::bernoulli_distribution drop(drop_probability);
  Selection s;
  s.hidden = pick(sp.hidden.size());
  for (const LayerSpace& L : sp.layers) {
    s.attention.push_back(pick(L.attention.size()));
    s.intermediate.push_back(pick(L.intermediate.size()));
    s.qkv.push_back(pick(L.formats_qkv.size()));
    s.o.push_back(pick(L.formats_o.size()));
    s.gate_up.push_back(pick(L.formats_gate_up.size()));
    s.down.push_back(pick(L.formats_down.size()));
    s.keep.push_back(!(L.can_skip && drop(rng)));
  }
  return s;
}

std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> select(const model::LlamaConfig& base,
                                                                    const CostSpace& sp, const Selection& s) {
  model::LlamaConfig c = base;
  c.hidden_size = sp.hidden.at(static_cast<size_t>(s.hidden));
  std::vector<model::LayerSpec> specs;
  for (size_t l = 0; l < sp.layers.size(); ++l) {
    const LayerSpace& L = sp.layers[l];
    model::LayerSpec x;
    const AttnChoice& A = L.attention.at(static_cast<size_t>(s.attention[l]));
    x.num_attention_heads = A.heads;
    x.num_key_value_heads = A.kv_heads;
    x.head_dim = A.head_dim;
    x.intermediate_size = L.intermediate.at(static_cast<size_t>(s.intermediate[l]));
    x.rope_theta = A.rope_theta > 0 ? A.rope_theta : base.rope.rope_theta;
    x.skip = !s.keep[l];
    x.format_qkv = L.formats_qkv.at(static_cast<size_t>(s.qkv[l]));
    x.format_o = L.formats_o.at(static_cast<size_t>(s.o[l]));
    x.format_gate_up = L.formats_gate_up.at(static_cast<size_t>(s.gate_up[l]));
    x.format_down = L.formats_down.at(static_cast<size_t>(s.down[l]));
    specs.push_back(x);
  }
  return {c, specs};
}


CostSpace cost_space_from_json(const Json& j, const model::LlamaConfig& c, const std::string& src) {
  JNAS_CHECK_CONFIG(j.is_object(), "{}: a cost space must be a JSON object", src);
  CostSpace s;
  auto ints = [&](const Json& o, const char* k, std::vector<int64_t> dflt) {
    if (!o.contains(k)) return dflt;
    JNAS_CHECK_CONFIG(o[k].is_array() && !o[k].empty(), "{}: '{}' must be a non-empty list of integers", src, k);
    std::vector<int64_t> v;
    for (const auto& e : o[k]) {
      JNAS_CHECK_CONFIG(e.is_number_integer() && e.get<int64_t>() > 0, "{}: '{}' must hold positive integers", src, k);
      v.push_back(e.get<int64_t>());
    }
    return v;
  };
  s.hidden = ints(j, "hidden", {c.hidden_size});
  const int64_t kv_heads = get_int(j, "kv_heads", src).value_or(c.num_key_value_heads);
  const int64_t head_dim = get_int(j, "head_dim", src).value_or(c.head_dim);
  JNAS_CHECK_CONFIG(kv_heads >= 1 && head_dim >= 1, "{}: 'kv_heads' and 'head_dim' must be positive, got {} and {}",
                    src, kv_heads, head_dim);
  auto layer = [&](const Json& o) {
    JNAS_CHECK_CONFIG(o.is_object(), "{}: a 'layers' entry must be an object, got {}", src, o.dump());
    LayerSpace l;
    for (int64_t h : ints(o, "heads", {c.num_attention_heads})) l.attention.push_back({h, kv_heads, head_dim, 0});
    l.intermediate = ints(o, "intermediate", {c.intermediate_size});
    std::vector<std::string> formats{"bf16"};
    if (o.contains("formats")) {
      JNAS_CHECK_CONFIG(o["formats"].is_array() && !o["formats"].empty(),
                        "{}: 'formats' must be a non-empty list of format names", src);
      formats.clear();
      for (const auto& f : o["formats"]) {
        JNAS_CHECK_CONFIG(f.is_string(), "{}: 'formats' must hold format names (strings), got {}", src, f.dump());
        formats.push_back(quant::find_format(f.get<std::string>()).name);
      }
    }
    l.formats_qkv = l.formats_o = l.formats_gate_up = l.formats_down = formats;
    JNAS_CHECK_CONFIG(!o.contains("can_skip") || o["can_skip"].is_boolean(), "{}: 'can_skip' must be true or false",
                      src);
    l.can_skip = o.value("can_skip", false);
    return l;
  };
  const Json lj = j.contains("layers") ? j["layers"] : Json::object();
  if (lj.is_array()) {
    JNAS_CHECK_CONFIG(static_cast<int64_t>(lj.size()) == c.num_hidden_layers,
                      "{}: 'layers' lists {} layers, the model has {}", src, lj.size(), c.num_hidden_layers);
    for (const auto& e : lj) s.layers.push_back(layer(e));
  } else {
    s.layers.assign(static_cast<size_t>(c.num_hidden_layers), layer(lj));
  }
  return s;
}

}  // namespace jointnas::profile
