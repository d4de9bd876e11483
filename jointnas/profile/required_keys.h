// The latency-table keys a cost space needs: what the profiler must measure so that predict()
// and expected_cost() can price every architecture of the space under a workload. Torch-free
// interface.
#pragma once

#include <string>
#include <vector>

#include "jointnas/model/config.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

// Every table key that predict() / expected_cost() can ask for over `space` and `w`.
// `cpu_table`: the keys of a table measured on the CPU (no producer-quantized linears there).
std::vector<std::string> required_keys(const model::LlamaConfig& config, const CostSpace& space,
                                       const Workload& w, bool cpu_table = false);

}  // namespace jointnas::profile
