// A latency-table key read back into its parts ("linear/m1/k4096/n6144/q8_0" -> op "linear",
// m 1, k 4096, n 6144, format "q8_0"): what a profiler measures for it. The keys are written by
// LatencyTable::*_key (latency_table.h). Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace jointnas::profile {

struct ParsedKey {
  std::string op;                // linear | attention | block_fixed | head
  std::map<char, int64_t> v;     // the dimensions by their letter ('K' for "kv")
  std::string format;            // linear only
  bool quantized_input = false;  // "/qx": x arrives quantized (LatencyTable::linear_key)
};

ParsedKey parse_key(const std::string& key);

// The dimension `c` of `p`; ConfigError naming `key` when the key lacks it.
int64_t need(const ParsedKey& p, char c, const std::string& key);

}  // namespace jointnas::profile
