// The search space as the cost model sees it (profile/cost_space.h): the supernet's decisions
// (hidden size, depth under the block ranking, KV groups x head size, MLP width, formats) mapped
// onto the cost model's per-layer choices, so that the expected cost of the supernet's
// probabilities and the discrete cost of an extracted architecture come from one table and one
// additive model:
//   - the attention choice of a layer is the pair (KV groups, head size), index g * n_hd + d, with
//     probability p_groups[g] * p_head_dim[d] (independent decisions);
//   - a layer's keep probability is the depth probability mass of the depths that keep it.
// At one-hot probabilities the expected cost equals predict() of arch_specs(arch) (tests/search).
#pragma once

#include <cstdint>
#include <vector>

#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/expected_cost.h"
#include "jointnas/search/space.h"
#include "jointnas/search/supernet.h"

namespace jointnas::search {

profile::CostSpace cost_space(const SearchSpace& space, const model::LlamaConfig& config,
                              const std::vector<int64_t>& block_rank);

// Differentiable in the distribution's probabilities.
profile::ArchProbs arch_probs(const SearchSpace& space, const ArchDist& dist, const std::vector<int64_t>& block_rank);

profile::Selection selection(const SearchSpace& space, const Arch& arch, const std::vector<int64_t>& block_rank);

}  // namespace jointnas::search
