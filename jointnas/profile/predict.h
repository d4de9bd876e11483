// The discrete cost model: a pure function from an architecture (config + LayerSpec list), a
// measured latency table and a workload to predicted latency and memory. The additive
// decomposition (one table entry per linear, attention and fixed op) is the same as
// expected_cost()'s (profile/expected_cost.h), so that the expectation at one-hot probabilities
// equals this cost exactly (tests/profile).
#pragma once

#include <cstdint>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

struct Cost {
  double latency_ms = 0;
  int64_t weight_bytes = 0;      // as the runtime holds them: packed formats, embeddings, norms, and
                                 // on the CPU the dequantized copy of each weight-only linear
  int64_t kv_cache_bytes = 0;    // at the workload's batch and context (+ new tokens)
  int64_t activation_bytes = 0;  // peak transient tensors of one forward for the workload
  int64_t table_bytes = 0;       // the runtime's RoPE cos / sin tables (fp32, per head_dim)
  int64_t runtime_bytes = 0;     // the calibration's constant (LatencyTable::Calibration::memory_bytes)
  int64_t params = 0;
  int64_t peak_bytes() const {
    return weight_bytes + kv_cache_bytes + activation_bytes + table_bytes + runtime_bytes;
  }
  Json to_json() const;
};

// Discrete cost of a model described by `config` (global sizes) and `specs` (per layer).
// `dtype_bytes`: size of the compute dtype (KV cache, activations, unquantized weights).
Cost predict(const model::LlamaConfig& config, const std::vector<model::LayerSpec>& specs,
             const LatencyTable& table, const Workload& w, int64_t dtype_bytes = 2);

}  // namespace jointnas::profile
