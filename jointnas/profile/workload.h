// What latency means: the workload a cost is predicted and measured for, and the token shapes it
// puts through the linears, attention and the head. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::profile {

// decode: one new token per sequence at context `context` (M = batch rows through every linear);
// prefill: `tokens` tokens per sequence at once (M = batch * tokens).
// mix: decode_weight * decode + prefill_weight * prefill.
struct Workload {
  std::string kind = "decode";  // decode | prefill | mix
  int64_t batch = 1;
  int64_t context = 512;        // decode: tokens already in the KV cache
  int64_t tokens = 2048;        // prefill length
  double decode_weight = 1.0, prefill_weight = 0.0;  // mix only

  static Workload from_json(const Json& j, const std::string& source);
  Json to_json() const;
  std::string name() const;  // "decode_b1_c512", "prefill_b1_s2048", "mix_..."
};

// Token rows through the linears, query rows and key count of attention, KV cache length and rows
// scored by the head, in one regime (decode or prefill) of a workload.
struct WorkloadShape {
  int64_t m = 1, attn_rows = 1, attn_context = 1, kv_len = 1, scored = 1;
};
WorkloadShape shape_of(const Workload& w, bool prefill);

// The (prefill?, weight) regimes a workload averages over: decode or prefill alone with weight 1,
// mix as both with its weights.
std::vector<std::pair<bool, double>> regimes(const Workload& w);

}  // namespace jointnas::profile
