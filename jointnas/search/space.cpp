#include "jointnas/search/space.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/quant/format.h"

namespace jointnas::search {
namespace {

// A choice list: YAML `{choices: [...]}` or a bare list. A number written with a decimal point
// (0.5, 1.0) is a fraction of `full`, floored to `multiple` (at least one `multiple`); an integer
// (1, 2, 3072) is a size. So `1` is one KV group and `1.0` all of them.
std::vector<int64_t> parse_sizes(const YAML::Node& node, int64_t full, int64_t multiple,
                                 const std::string& where) {
  YAML::Node list = node.IsMap() ? node["choices"] : node;
  JNAS_CHECK_CONFIG(list && list.IsSequence() && list.size() > 0,
                    "{}: expected a non-empty list of choices (sizes, or fractions such as 0.5)",
                    where);
  std::set<int64_t> out;
  for (const auto& item : list) {
    double v = 0;
    try {
      v = item.as<double>();
    } catch (const YAML::Exception&) {
      throw ConfigError(fmt::format("{}: choice '{}' is not a number", where, item.Scalar()));
    }
    JNAS_CHECK_CONFIG(std::isfinite(v) && v > 0, "{}: choice {} must be > 0", where, v);
    const bool fraction = item.Scalar().find_first_of(".eE") != std::string::npos;
    int64_t size = 0;
    if (fraction) {
      JNAS_CHECK_CONFIG(v <= 1.0, "{}: fraction {} must be in (0, 1] (write sizes as integers)", where, v);
      size = static_cast<int64_t>(std::floor(v * static_cast<double>(full) / multiple)) * multiple;
      size = std::max(size, multiple);
    } else {
      JNAS_CHECK_CONFIG(v == std::floor(v), "{}: size {} must be an integer", where, v);
      // Before the cast: a double beyond int64's range does not convert (undefined behaviour).
      JNAS_CHECK_CONFIG(v <= static_cast<double>(full), "{}: choice {} exceeds the model's {}", where,
                        v, full);
      size = static_cast<int64_t>(v);
    }
    JNAS_CHECK_CONFIG(size <= full, "{}: choice {} exceeds the model's {}", where, size, full);
    JNAS_CHECK_CONFIG(size % multiple == 0, "{}: choice {} is not a multiple of {} (multiple_of)",
                      where, size, multiple);
    out.insert(size);
  }
  return {out.begin(), out.end()};
}

std::vector<std::string> parse_formats(const YAML::Node& node, const std::string& where) {
  JNAS_CHECK_CONFIG(node.IsSequence() && node.size() > 0, "{}: expected a list of format names ({})",
                    where, quant::format_names());
  std::vector<std::string> out;
  for (const auto& item : node) {
    const std::string name = item.as<std::string>();
    quant::find_format(name);  // ConfigError listing the known names
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

// Formats with a fast kernel on the device (docs/formats.md): every registry row has a CUDA path
// on Hopper; on the CPU, those whose path is not an emulation. A format many times slower than the
// rest must not sit in the default space: under a soft distribution its share dominates the
// expected latency, and the penalty crushes every width before the format choice is made (the
// CPU study of issue 8: fp8 at 40x bf16 drove the joint search to the smallest widths at every
// budget).
// The target llama.cpp (docs/llamacpp.md) runs ggml's formats only, and defaults to all of them.
std::vector<std::string> device_formats(const std::string& device) {
  JNAS_CHECK_CONFIG(device == "cpu" || device == "cuda" || device == "llama.cpp",
                    "unknown device '{}' (cpu, cuda or llama.cpp)", device);
  const bool llamacpp = device == "llama.cpp";
  std::vector<std::string> out;
  for (const auto& f : quant::formats()) {
    // Elsewhere ggml's formats are opt-in (a space that names them: formats: [f16, q8_0, q4_k, ...]):
    // they are llama.cpp's, and the K-quants need widths in multiples of 256 (docs/formats.md).
    if ((f.weight == quant::WeightType::kGgml) != llamacpp) continue;
    if (device != "cpu" || f.fast_on_cpu) out.push_back(f.name);
  }
  return out;
}

int64_t gcd_all(const std::vector<int64_t>& v) {
  int64_t g = 0;
  for (int64_t x : v) g = std::gcd(g, x);
  return g;
}

// ggml's block formats have no smaller group to fall back to: every input width a slot can take
// (hidden widths for qkv and gate_up, heads x head size for o, MLP widths for down) must be a whole
// number of blocks, or the supernet and the export would fail later, in training or in writing.
// The input widths each slot of `layer` can take: hidden widths for qkv and gate_up, heads x head
// size for o, MLP widths for down.
std::array<std::vector<int64_t>, kNumFormatSlots> slot_input_widths(const SearchSpace& s, const LayerChoices& layer) {
  std::vector<int64_t> o_widths;
  for (int64_t g : layer.kv_groups) {
    for (int64_t hd : layer.head_dims) o_widths.push_back(g * s.group_size * hd);
  }
  return {s.hidden, o_widths, s.hidden, layer.intermediate};
}

// Whether every width a slot can take is a whole number of `f`'s blocks (1 for non-ggml formats).
bool fits_blocks(const quant::QuantFormat& f, const std::vector<int64_t>& widths) {
  return std::all_of(widths.begin(), widths.end(), [&](int64_t w) { return w % f.block() == 0; });
}

// The target llama.cpp's default formats per slot: the ggml formats whose blocks every width of the
// slot fills (f16 always; stories260K's MLP width 172 leaves its down projection f16 only). A space
// that names its formats gets them checked instead (check_ggml_widths).
void fit_default_ggml_formats(const SearchSpace& s, LayerChoices& layer,
                              const std::array<bool, kNumFormatSlots>& defaulted) {
  const auto widths = slot_input_widths(s, layer);
  for (int slot = 0; slot < kNumFormatSlots; ++slot) {
    if (!defaulted[slot]) continue;
    std::erase_if(layer.formats[slot],
                  [&](const std::string& name) { return !fits_blocks(quant::find_format(name), widths[slot]); });
  }
}

void check_ggml_widths(const SearchSpace& s, const LayerChoices& layer, int64_t l, const std::string& src) {
  const auto widths = slot_input_widths(s, layer);
  const char* what[kNumFormatSlots] = {"hidden width", "attention width (heads x head size)", "hidden width",
                                       "MLP width"};
  for (int slot = 0; slot < kNumFormatSlots; ++slot) {
    for (const std::string& name : layer.formats[slot]) {
      const quant::QuantFormat& f = quant::find_format(name);
      if (f.weight != quant::WeightType::kGgml) continue;
      for (int64_t w : widths[slot]) {
        if (w % f.block() == 0) continue;
        const std::string slot_name = model::slot_name(model::kSlots[slot]);
        throw ConfigError(
            fmt::format("{}: layer {}: {} works on blocks of {} inputs, and the {} slot can take the {} {}, "
                        "not a whole number of blocks", src, l, name, f.block(), slot_name, what[slot], w),
            fmt::format("keep that slot's widths multiples of {} or leave {} out of formats_{}", f.block(), name,
                        slot_name));
      }
    }
  }
}

}  // namespace

int64_t supernet_group(const model::LlamaConfig& config, const LayerChoices& layer, int slot,
                       const std::string& format) {
  const quant::QuantFormat& f = quant::find_format(format);
  const int64_t H = config.hidden_size, I = config.intermediate_size;
  const int64_t hd = config.head_dim;
  switch (slot) {
    case 0:
    case 2: return f.group_for(H);
    case 3: return f.group_for(I);
    default: {
      const int64_t K = config.num_attention_heads * hd;
      const int64_t g = f.group_for(K);
      if (g == K) return K;  // one scale per row: any column slice keeps it
      // Columns of a head stay together: a group must divide every head size (each head keeps a
      // prefix of its dims) or, without a head-size choice, the width of a KV group.
      std::vector<int64_t> spans = layer.head_dims;
      if (spans.size() == 1 && spans[0] == hd) spans = {hd * (config.num_attention_heads / config.num_key_value_heads)};
      const int64_t span = gcd_all(spans);
      for (int64_t c : {g, int64_t{64}, int64_t{32}}) {
        if (span % c == 0 && f.allows_group(K, c)) return c;
      }
      throw ConfigError(fmt::format(
          "format {} has no quantization group that divides the head sizes {} (groups of 32, 64 "
          "or {} must not cross a head in o_proj)", format, fmt::join(layer.head_dims, ", "), f.group),
          "choose head sizes that are multiples of 32, or drop this format from the o slot");
    }
  }
}

SearchSpace SearchSpace::dense(const model::LlamaConfig& c) {
  SearchSpace s;
  s.hidden = {c.hidden_size};
  s.depth = {c.num_hidden_layers};
  s.group_size = c.num_attention_heads / c.num_key_value_heads;
  LayerChoices l;
  l.kv_groups = {c.num_key_value_heads};
  l.head_dims = {c.head_dim};
  l.intermediate = {c.intermediate_size};
  for (auto& f : l.formats) f = {"bf16"};
  s.layers.assign(c.num_hidden_layers, l);
  return s;
}

SearchSpace SearchSpace::from_yaml(const std::string& text, const model::LlamaConfig& c,
                                   const std::string& src, const std::string& device) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: not valid YAML: {}", src, e.what()));
  }
  if (root.IsMap() && root["search_space"]) root = root["search_space"];
  JNAS_CHECK_CONFIG(root.IsMap(), "{}: the search space must be a mapping (hidden, depth, layers, formats)", src);
  try {
    SearchSpace s = dense(c);
    s.multiple_of = root["multiple_of"] ? root["multiple_of"].as<int64_t>() : 128;
    JNAS_CHECK_CONFIG(s.multiple_of > 0, "{}: multiple_of must be > 0", src);
    // The quantization group of the hidden / MLP inputs must divide every width choice, or slicing
    // would cut a group (docs/search.md, slicing-invariant quantization).
    if (root["hidden"]) s.hidden = parse_sizes(root["hidden"], c.hidden_size, s.multiple_of, src + ": hidden");
    if (root["depth"]) {
      const YAML::Node d = root["depth"];
      if (d.IsMap() && d["min"]) {
        const int64_t lo = d["min"].as<int64_t>();
        JNAS_CHECK_CONFIG(lo >= 1 && lo <= c.num_hidden_layers, "{}: depth.min {} must be in [1, {}]",
                          src, lo, c.num_hidden_layers);
        s.depth.clear();
        for (int64_t v = lo; v <= c.num_hidden_layers; ++v) s.depth.push_back(v);
      } else {
        s.depth = parse_sizes(d, c.num_hidden_layers, 1, src + ": depth");
      }
    }
    std::vector<std::string> formats = root["formats"] ? parse_formats(root["formats"], src + ": formats")
                                                       : device_formats(device);
    const YAML::Node L = root["layers"] ? root["layers"] : YAML::Node(YAML::NodeType::Map);
    JNAS_CHECK_CONFIG(L.IsMap(), "{}: layers must be a mapping", src);
    std::vector<bool> searchable(c.num_hidden_layers, true);
    if (L["searchable"] && !(L["searchable"].IsScalar() && L["searchable"].as<std::string>() == "all")) {
      JNAS_CHECK_CONFIG(L["searchable"].IsSequence(), "{}: layers.searchable must be 'all' or a list of layer indices", src);
      searchable.assign(c.num_hidden_layers, false);
      for (const auto& i : L["searchable"]) {
        const int64_t l = i.as<int64_t>();
        JNAS_CHECK_CONFIG(l >= 0 && l < c.num_hidden_layers, "{}: layers.searchable: layer {} out of [0, {})",
                          src, l, c.num_hidden_layers);
        searchable[l] = true;
      }
    }
    LayerChoices lc = s.layers[0];
    const int64_t groups = c.num_key_value_heads;
    if (L["heads"]) lc.kv_groups = parse_sizes(L["heads"], groups, 1, src + ": layers.heads (KV groups)");
    if (L["head_dim"]) {
      lc.head_dims = parse_sizes(L["head_dim"], c.head_dim, 2, src + ": layers.head_dim");
    }
    if (L["intermediate"]) {
      lc.intermediate = parse_sizes(L["intermediate"], c.intermediate_size, s.multiple_of,
                                    src + ": layers.intermediate");
    }
    std::array<bool, kNumFormatSlots> defaulted{};
    for (int slot = 0; slot < kNumFormatSlots; ++slot) {
      const std::string key = fmt::format("formats_{}", model::slot_name(model::kSlots[slot]));
      lc.formats[slot] = L[key] ? parse_formats(L[key], src + ": layers." + key) : formats;
      defaulted[slot] = !L[key] && !root["formats"];
    }
    if (device == "llama.cpp") {
      fit_default_ggml_formats(s, lc, defaulted);
      // A layer outside `searchable` keeps llama.cpp's unquantized type, f16 (bf16 would be
      // converted to it by the GGUF export anyway).
      for (LayerChoices& l : s.layers) l.formats.fill({"f16"});
    }
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (searchable[l]) {
        s.layers[l] = lc;
      }  // a layer outside `searchable` stays as in the model, in bf16 (llama.cpp: f16)
    }
    // Every format of every slot must slice cleanly (o_proj: groups inside heads).
    for (size_t l = 0; l < s.layers.size(); ++l) {
      const LayerChoices& layer = s.layers[l];
      check_ggml_widths(s, layer, static_cast<int64_t>(l), src);
      for (int slot = 0; slot < kNumFormatSlots; ++slot) {
        for (const auto& f : layer.formats[slot]) supernet_group(c, layer, slot, f);
      }
      for (int64_t w : s.hidden) {
        for (const auto& f : layer.formats[0]) {
          const int64_t g = quant::find_format(f).group_for(c.hidden_size);
          JNAS_CHECK_CONFIG(g == c.hidden_size || w % g == 0,
                            "{}: hidden size {} is not a multiple of {}'s group {}", src, w, f, g);
        }
      }
      for (int64_t w : layer.intermediate) {
        for (const auto& f : layer.formats[3]) {
          const int64_t g = quant::find_format(f).group_for(c.intermediate_size);
          JNAS_CHECK_CONFIG(g == c.intermediate_size || w % g == 0,
                            "{}: intermediate size {} is not a multiple of {}'s group {}", src, w, f, g);
        }
      }
    }
    return s;
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: {}", src, e.what()));
  }
}

SearchSpace SearchSpace::from_yaml_file(const std::string& path, const model::LlamaConfig& c,
                                        const std::string& device) {
  return from_yaml(read_text_file(path), c, path, device);
}

Json SearchSpace::to_json() const {
  Json layers_j = Json::array();
  for (const auto& l : layers) {
    Json f = Json::object();
    for (int s = 0; s < kNumFormatSlots; ++s) f[model::slot_name(model::kSlots[s])] = l.formats[s];
    layers_j.push_back(Json{{"kv_groups", l.kv_groups}, {"head_dims", l.head_dims},
                            {"intermediate", l.intermediate}, {"formats", f}});
  }
  return Json{{"hidden", hidden}, {"depth", depth}, {"group_size", group_size},
              {"multiple_of", multiple_of}, {"layers", layers_j}};
}

double SearchSpace::log10_num_architectures(const std::vector<int64_t>& block_rank) const {
  const int64_t L = static_cast<int64_t>(layers.size());
  std::vector<int64_t> order(L);
  std::iota(order.begin(), order.end(), 0);
  if (!block_rank.empty()) {
    for (int64_t l = 0; l < L; ++l) order[block_rank[l]] = l;  // order[r] = layer of rank r
  }
  // sum over depth choices of prod over kept layers of their choice counts, in log space.
  std::vector<double> log_terms;
  for (int64_t d : depth) {
    double lt = 0;
    for (int64_t r = 0; r < d; ++r) {
      const LayerChoices& lc = layers[order[r]];
      double n = static_cast<double>(lc.kv_groups.size() * lc.head_dims.size() * lc.intermediate.size());
      for (const auto& f : lc.formats) n *= static_cast<double>(f.size());
      lt += std::log10(n);
    }
    log_terms.push_back(lt);
  }
  const double mx = *std::max_element(log_terms.begin(), log_terms.end());
  double sum = 0;
  for (double t : log_terms) sum += std::pow(10.0, t - mx);
  return std::log10(static_cast<double>(hidden.size())) + mx + std::log10(sum);
}

Json Arch::to_json(const SearchSpace& s) const {
  Json layers_j = Json::array();
  for (size_t l = 0; l < kv_groups.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    Json f = Json::object();
    for (int k = 0; k < kNumFormatSlots; ++k) f[model::slot_name(model::kSlots[k])] = lc.formats[k][formats[l][k]];
    layers_j.push_back(Json{{"kv_groups", lc.kv_groups[kv_groups[l]]},
                            {"head_dim", lc.head_dims[head_dims[l]]},
                            {"intermediate", lc.intermediate[intermediate[l]]},
                            {"formats", f}});
  }
  return Json{{"hidden", s.hidden[hidden]}, {"depth", s.depth[depth]}, {"layers", layers_j}};
}

SearchSpace restrict_to(const SearchSpace& s, const Arch& a) {
  SearchSpace r = s;
  r.hidden = {s.hidden.at(static_cast<size_t>(a.hidden))};
  r.depth = {s.depth.at(static_cast<size_t>(a.depth))};
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    LayerChoices& rc = r.layers[l];
    rc.kv_groups = {lc.kv_groups.at(static_cast<size_t>(a.kv_groups.at(l)))};
    rc.head_dims = {lc.head_dims.at(static_cast<size_t>(a.head_dims.at(l)))};
    rc.intermediate = {lc.intermediate.at(static_cast<size_t>(a.intermediate.at(l)))};
    for (int k = 0; k < kNumFormatSlots; ++k) rc.formats[k] = {lc.formats[k].at(static_cast<size_t>(a.formats.at(l)[k]))};
  }
  return r;
}

SearchSpace restrict_formats(const SearchSpace& s, const std::vector<std::string>& formats) {
  SearchSpace r = s;
  for (size_t l = 0; l < r.layers.size(); ++l) {
    for (int k = 0; k < kNumFormatSlots; ++k) {
      std::vector<std::string>& f = r.layers[l].formats[k];
      std::erase_if(f, [&](const std::string& n) { return std::find(formats.begin(), formats.end(), n) == formats.end(); });
      JNAS_CHECK_CONFIG(!f.empty(), "layer {} {}: none of the formats [{}] is in the search space", l, model::slot_name(model::kSlots[k]),
                        fmt::join(formats, ", "));
    }
  }
  return r;
}

Arch random_arch(const SearchSpace& s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<int64_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  Arch a;
  a.hidden = pick(s.hidden.size());
  a.depth = pick(s.depth.size());
  for (const auto& l : s.layers) {
    a.kv_groups.push_back(pick(l.kv_groups.size()));
    a.head_dims.push_back(pick(l.head_dims.size()));
    a.intermediate.push_back(pick(l.intermediate.size()));
    std::array<int64_t, kNumFormatSlots> f{};
    for (int k = 0; k < kNumFormatSlots; ++k) f[k] = pick(l.formats[k].size());
    a.formats.push_back(f);
  }
  return a;
}

SearchSpace fix_structure(const SearchSpace& s, const Arch& a) {
  SearchSpace r = restrict_to(s, a);
  for (size_t l = 0; l < r.layers.size(); ++l) r.layers[l].formats = s.layers[l].formats;
  return r;
}

namespace {
template <typename T>
int64_t index_of(const std::vector<T>& to, const T& v, const std::string& what) {
  auto it = std::find(to.begin(), to.end(), v);
  if (it == to.end()) throw ConfigError(fmt::format("{} = {} is not a choice of the target search space", what, v));
  return it - to.begin();
}
}  // namespace

Arch map_arch(const SearchSpace& from, const Arch& a, const SearchSpace& to) {
  JNAS_CHECK_CONFIG(from.layers.size() == to.layers.size(), "map_arch: spaces of {} and {} layers", from.layers.size(),
                    to.layers.size());
  Arch m;
  m.hidden = index_of(to.hidden, from.hidden.at(static_cast<size_t>(a.hidden)), "hidden");
  m.depth = index_of(to.depth, from.depth.at(static_cast<size_t>(a.depth)), "depth");
  for (size_t l = 0; l < from.layers.size(); ++l) {
    const LayerChoices &f = from.layers[l], &t = to.layers[l];
    const std::string at = fmt::format("layer {} ", l);
    m.kv_groups.push_back(index_of(t.kv_groups, f.kv_groups.at(static_cast<size_t>(a.kv_groups.at(l))), at + "kv_groups"));
    m.head_dims.push_back(index_of(t.head_dims, f.head_dims.at(static_cast<size_t>(a.head_dims.at(l))), at + "head_dim"));
    m.intermediate.push_back(
        index_of(t.intermediate, f.intermediate.at(static_cast<size_t>(a.intermediate.at(l))), at + "intermediate"));
    std::array<int64_t, kNumFormatSlots> fm{};
    for (int k = 0; k < kNumFormatSlots; ++k) {
      fm[k] = index_of(t.formats[k], f.formats[k].at(static_cast<size_t>(a.formats.at(l)[k])), at + model::slot_name(model::kSlots[k]));
    }
    m.formats.push_back(fm);
  }
  return m;
}

Arch first_arch(const SearchSpace& s) {
  Arch a;
  a.kv_groups.assign(s.layers.size(), 0);
  a.head_dims.assign(s.layers.size(), 0);
  a.intermediate.assign(s.layers.size(), 0);
  a.formats.assign(s.layers.size(), {0, 0, 0, 0});
  return a;
}

Arch largest_arch(const SearchSpace& s) {
  Arch a;
  a.hidden = static_cast<int64_t>(s.hidden.size()) - 1;
  a.depth = static_cast<int64_t>(s.depth.size()) - 1;
  for (const auto& l : s.layers) {
    a.kv_groups.push_back(static_cast<int64_t>(l.kv_groups.size()) - 1);
    a.head_dims.push_back(static_cast<int64_t>(l.head_dims.size()) - 1);
    a.intermediate.push_back(static_cast<int64_t>(l.intermediate.size()) - 1);
    std::array<int64_t, kNumFormatSlots> f{};
    for (int k = 0; k < kNumFormatSlots; ++k) {
      auto it = std::find(l.formats[k].begin(), l.formats[k].end(), "bf16");
      f[k] = it == l.formats[k].end() ? 0 : it - l.formats[k].begin();
    }
    a.formats.push_back(f);
  }
  return a;
}

Arch smallest_arch(const SearchSpace& s, const model::LlamaConfig& c) {
  Arch a;
  for (const auto& l : s.layers) {
    a.kv_groups.push_back(0);
    a.head_dims.push_back(0);
    a.intermediate.push_back(0);
    std::array<int64_t, kNumFormatSlots> f{};
    for (int k = 0; k < kNumFormatSlots; ++k) {
      double best = 1e9;
      for (size_t i = 0; i < l.formats[k].size(); ++i) {
        const double b = quant::find_format(l.formats[k][i]).bits_per_weight(c.hidden_size);
        if (b < best) best = b, f[k] = static_cast<int64_t>(i);
      }
    }
    a.formats.push_back(f);
  }
  return a;
}

bool block_kept(const std::vector<int64_t>& block_rank, int64_t layer, int64_t depth) {
  const int64_t rank = block_rank.empty() ? layer : block_rank[layer];
  return rank < depth;
}

std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> arch_specs(
    const model::LlamaConfig& base, const SearchSpace& s, const Arch& a,
    const std::vector<int64_t>& block_rank) {
  model::LlamaConfig c = base;
  c.hidden_size = s.hidden[a.hidden];
  c.layer_specs.clear();
  std::vector<model::LayerSpec> specs;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    model::LayerSpec sp;
    const int64_t groups = lc.kv_groups[a.kv_groups[l]];
    const int64_t hd = lc.head_dims[a.head_dims[l]];
    sp.num_key_value_heads = groups;
    sp.num_attention_heads = groups * s.group_size;
    sp.head_dim = hd;
    sp.intermediate_size = lc.intermediate[a.intermediate[l]];
    // The first hd/2 rotary pairs of the full head are an ordinary RoPE of size hd with base
    // theta^(hd / d) (method.md); the score scale stays 1 / sqrt(d).
    sp.rope_theta = std::pow(base.rope.rope_theta, static_cast<double>(hd) / base.head_dim);
    if (hd != base.head_dim) sp.attention_scale = 1.0 / std::sqrt(static_cast<double>(base.head_dim));
    sp.skip = !block_kept(block_rank, static_cast<int64_t>(l), s.depth[a.depth]);
    for (int k = 0; k < kNumFormatSlots; ++k) sp.format_of(k) = lc.formats[k][a.formats[l][k]];
    specs.push_back(sp);
  }
  return {c, specs};
}

}  // namespace jointnas::search
