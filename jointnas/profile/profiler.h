// The profiler: measures the latency-table entries a search space needs on the target device
// with the real kernels (QuantLinear paths, fused kernels, attention as the runtime runs it).
// Practice of the device tool's METHOD.md: warm-up, CUDA events (steady clock on the CPU; timing
// in profile/timing.h), median of repeats with the 10th / 90th percentiles stored, and rotating
// weight copies so that caches do not flatter small shapes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

struct ProfileOptions {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kBFloat16;  // compute dtype (fp32 is the CPU default)
  int warmup = 3;
  int repeats = 20;
  // Rotating copies of each weight until their total exceeds this (2x a large L2 / LLC).
  int64_t rotate_bytes = int64_t(128) << 20;
  int64_t vocab = 0;       // for head entries
  double rms_eps = 1e-5;
};

// Device, driver / CUDA / LibTorch versions, clocks where readable, git SHA, dtype: the
// identity a table is reused under.
Json device_meta(const ProfileOptions& o);

// The table at `path` when it was measured under `meta` (device_meta(); the list of workloads it
// was measured for aside), so that profiling extends it; else an empty table, with a warning when
// a table under other conditions was there (it is replaced when the caller saves).
LatencyTable load_reusable_table(const std::string& path, const Json& meta);

// Stamps `meta` (device_meta()) on `table`, with the table's list of workloads extended by `w`.
void stamp_meta(LatencyTable& table, Json meta, const Workload& w);

// Measures every key of `keys` that `table` lacks (all of them with `force`), adding entries.
// `progress(done, total, key, eta_seconds)` after each entry.
void profile_keys(LatencyTable& table, const std::vector<std::string>& keys, const ProfileOptions& o,
                  bool force = false,
                  const std::function<void(int64_t, int64_t, const std::string&, double)>& progress = {});

}  // namespace jointnas::profile
