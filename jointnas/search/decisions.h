// The discrete decisions of an architecture, as one visitor over a SearchSpace and an Arch: the
// hidden size and the depth (global), and per layer the KV groups, the head size, the MLP width
// and one format per linear slot. Every walk over decisions (the repair, the budget check,
// arch.json's indices, value names for logs) goes through for_each_decision, so that a new
// decision is added in one place. Names match the supernet's logits (`arch_hidden`,
// `layers.3.arch_format_down`). Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jointnas/search/space.h"

namespace jointnas::search {

enum class DecisionKind : uint8_t { kHidden, kDepth, kKvGroups, kHeadDim, kIntermediate, kFormat };

// One decision of `arch` over `space`: its kind, where it sits, its name, its number of choices
// and the index it holds (a pointer into the Arch).
struct Decision {
  DecisionKind kind = DecisionKind::kHidden;
  int64_t layer = -1;                         // -1 for the global decisions
  model::LinearSlot slot = model::LinearSlot::kQkv;  // kFormat only
  std::string name;
  int64_t choices = 0;
  int64_t* index = nullptr;
};

// Calls `fn` for every decision with more than one choice, in a fixed order (hidden, depth, then
// per layer kv_groups, head_dim, intermediate, formats by slot).
void for_each_decision(const SearchSpace& space, Arch& arch, const std::function<void(Decision&)>& fn);
// The same decisions as a list (pointers into `arch`).
std::vector<Decision> decisions(const SearchSpace& space, Arch& arch);

// The value choice `c` of decision `d` stands for, as text ("256", "w4a16_g128").
std::string value_name(const SearchSpace& space, const Decision& d, int64_t c);

}  // namespace jointnas::search
