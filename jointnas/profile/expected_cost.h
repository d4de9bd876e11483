// The differentiable cost model: the expectation of predict() (profile/predict.h) over a
// distribution of architectures of a CostSpace, with independent decisions. Every term of
// predict() is a table value indexed by at most (hidden, width, format) of one op, so its
// expectation is a contraction of a small cost tensor with the probability vectors; at one-hot
// probabilities it equals predict() of the selected architecture (up to fp64 rounding).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/model/config.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

// Probabilities (1-D tensors, each summing to 1) over the choices of a CostSpace, in its order.
struct LayerProbs {
  at::Tensor attention, intermediate, qkv, o, gate_up, down;
  at::Tensor keep;  // scalar probability that the block runs (1 when it cannot be skipped)
};
struct ArchProbs {
  at::Tensor hidden;
  std::vector<LayerProbs> layers;
};

struct ExpectedCost {
  at::Tensor latency_ms;      // scalar, differentiable in every probability
  at::Tensor weight_bytes;    // scalar, differentiable
  at::Tensor kv_cache_bytes;  // scalar, differentiable
  at::Tensor params;          // scalar, differentiable
};

ExpectedCost expected_cost(const model::LlamaConfig& config, const CostSpace& space,
                           const ArchProbs& probs, const LatencyTable& table, const Workload& w,
                           int64_t dtype_bytes = 2);

}  // namespace jointnas::profile
