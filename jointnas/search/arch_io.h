// arch.json: what a search (or a rule) decided, as the stages after it read it. It holds the
// architecture (values and indices into the space), the deployable config with its per-layer
// LayerSpecs (the source of truth for finetune and export), the depth order, the predicted cost,
// the budget and the workload.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/predict.h"
#include "jointnas/search/budget.h"
#include "jointnas/search/space.h"

namespace jointnas::search {

// What a search or a rule produced.
struct DnasResult {
  Arch argmax;                  // before repair
  Arch arch;                    // after repair
  std::vector<std::string> repairs;
  profile::Cost predicted;      // of `arch`
  int64_t steps_run = 0;
  std::string stop_reason;      // "steps" | "entropy" | "decided" | "rule"
};

Json arch_json(const CostContext& cc, const DnasResult& r, const Budget& b);
// The architecture of an arch.json as indices into `space` (IoError naming `source` when the
// file is not an arch.json of that space).
Arch arch_from_json(const Json& j, const SearchSpace& space, const std::string& source);
// The depth order the architecture was searched with (arch.json's block_rank; identity when
// empty).
std::vector<int64_t> block_rank_from_arch_json(const Json& j, int64_t layers, const std::string& source);

// The single-architecture space of an arch.json's deployable config (its LayerSpecs, the source of
// truth for the stages after the search), checked against the model it is cut from: equal to
// restrict_to(space, arch) of the space it was searched in. IoError naming `source` when a spec
// does not fit the model (a width above the model's, a format that cannot slice on its grid, skip
// flags that disagree with the depth order).
SearchSpace space_from_arch_json(const Json& arch, const model::LlamaConfig& model, const std::string& source);

// The architecture of an arch.json's deployable config as indices into `space`, which was searched
// with `block_rank`: how a baseline's model (written against another space, a depth-only one)
// becomes a candidate of the joint search. A dropped block is the identity, so its spec is not
// looked at. IoError naming `source` when the file is no arch.json of the model; ConfigError when
// `space` lacks one of its values or its blocks were dropped in another order.
Arch arch_in_space(const Json& arch, const model::LlamaConfig& model, const SearchSpace& space,
                   const std::vector<int64_t>& block_rank, const std::string& source);

}  // namespace jointnas::search
