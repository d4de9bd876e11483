// The decisions of an architecture; see decisions.h.
#include "jointnas/search/decisions.h"

#include <fmt/format.h>

namespace jointnas::search {

void for_each_decision(const SearchSpace& s, Arch& a, const std::function<void(Decision&)>& fn) {
  auto visit = [&](DecisionKind kind, int64_t layer, model::LinearSlot slot, std::string name, size_t n, int64_t* idx) {
    if (n < 2) return;
    Decision d{kind, layer, slot, std::move(name), static_cast<int64_t>(n), idx};
    fn(d);
  };
  visit(DecisionKind::kHidden, -1, model::LinearSlot::kQkv, "arch_hidden", s.hidden.size(), &a.hidden);
  visit(DecisionKind::kDepth, -1, model::LinearSlot::kQkv, "arch_depth", s.depth.size(), &a.depth);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    const auto li = static_cast<int64_t>(l);
    const std::string p = fmt::format("layers.{}.", l);
    visit(DecisionKind::kKvGroups, li, model::LinearSlot::kQkv, p + "arch_kv_groups", lc.kv_groups.size(), &a.kv_groups[l]);
    visit(DecisionKind::kHeadDim, li, model::LinearSlot::kQkv, p + "arch_head_dim", lc.head_dims.size(), &a.head_dims[l]);
    visit(DecisionKind::kIntermediate, li, model::LinearSlot::kQkv, p + "arch_intermediate", lc.intermediate.size(),
          &a.intermediate[l]);
    for (model::LinearSlot slot : model::kSlots) {
      const size_t k = model::slot_index(slot);
      visit(DecisionKind::kFormat, li, slot, p + "arch_format_" + model::slot_name(slot), lc.formats[k].size(),
            &a.formats[l][k]);
    }
  }
}

std::vector<Decision> decisions(const SearchSpace& space, Arch& arch) {
  std::vector<Decision> out;
  for_each_decision(space, arch, [&](Decision& d) { out.push_back(d); });
  return out;
}

std::string value_name(const SearchSpace& s, const Decision& d, int64_t c) {
  const auto i = static_cast<size_t>(c);
  const auto l = static_cast<size_t>(d.layer);
  switch (d.kind) {
    case DecisionKind::kHidden: return std::to_string(s.hidden.at(i));
    case DecisionKind::kDepth: return std::to_string(s.depth.at(i));
    case DecisionKind::kKvGroups: return std::to_string(s.layers.at(l).kv_groups.at(i));
    case DecisionKind::kHeadDim: return std::to_string(s.layers.at(l).head_dims.at(i));
    case DecisionKind::kIntermediate: return std::to_string(s.layers.at(l).intermediate.at(i));
    case DecisionKind::kFormat: return s.layers.at(l).formats[model::slot_index(d.slot)].at(i);
  }
  return std::to_string(c);
}

}  // namespace jointnas::search
