// The decisions of a search space as the cost model sees them (candidate values per decision), a
// choice per decision (Selection) and the architecture it selects, and the older JSON cost-space
// description that `jointnas profile --space FILE.json` reads. Torch-free.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"

namespace jointnas::profile {

// One attention shape a layer may take: query heads, KV heads and head size (the search cuts
// whole KV groups, so heads and KV heads move together, and shrinks the head size).
struct AttnChoice {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  double rope_theta = 0;  // the RoPE base at this head size (0: the model's)
  bool operator==(const AttnChoice&) const = default;
};
struct LayerSpace {
  std::vector<AttnChoice> attention;   // joint (heads, kv heads, head size) choices
  std::vector<int64_t> intermediate;   // MLP widths
  std::vector<std::string> formats_qkv, formats_o, formats_gate_up, formats_down;
  bool can_skip = false;
};
struct CostSpace {
  std::vector<int64_t> hidden;  // global hidden size choices
  std::vector<LayerSpace> layers;
};

// The architecture (config + specs) selected by choice indices, for tests and discretisation.
struct Selection {
  int64_t hidden = 0;
  std::vector<int64_t> attention, intermediate, qkv, o, gate_up, down;
  std::vector<bool> keep;
};
// A uniformly random choice per decision; a droppable block is dropped with `drop_probability`.
Selection random_selection(const CostSpace& space, std::mt19937_64& rng, double drop_probability = 0.2);

std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> select(
    const model::LlamaConfig& base, const CostSpace& space, const Selection& s);

// The JSON cost-space description, older than the search space YAML (docs/search.md), which maps
// onto the same CostSpace through search::cost_space:
// {"hidden": [..], "kv_heads": 8, "head_dim": 128, "layers": [{"heads": [..], "intermediate":
// [..], "formats": [..], "can_skip": bool} | one object for all layers]}. Every key is optional
// (default: the dense model of `config`); `{}` is the dense model. Throws ConfigError naming
// `source` and the key.
CostSpace cost_space_from_json(const Json& j, const model::LlamaConfig& config, const std::string& source);

}  // namespace jointnas::profile
