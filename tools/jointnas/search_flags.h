// Flags and inputs shared by the commands that cost architectures against a latency table
// (`search`, `arch`): the workload, a latency budget in ms or as a fraction of the dense model,
// and the depth order of importance.json. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "jointnas/profile/workload.h"

namespace jointnas::cli {

// --workload / --batch / --context / --tokens, as the table was profiled.
void add_workload_flags(CLI::App* app, profile::Workload& w);

// "12.5" -> 12.5 ms; "0.6x" -> 0.6 * dense_ms. ConfigError naming `flag` otherwise.
double parse_latency_budget(const std::string& text, double dense_ms, const std::string& flag = "--latency");

// importance.json lists block_rank[r] = layer at rank r; returns the rank of each layer (what the
// supernet and the cost model want). IoError unless it is a permutation of 0..layers-1.
std::vector<int64_t> ranks_from_importance(const std::string& path, int64_t layers);

}  // namespace jointnas::cli
