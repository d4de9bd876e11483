// The closed loop of the cost model on the device: random heterogeneous sub-architectures of a
// CostSpace, built with random weights at their exact shapes and formats, run end to end as
// `jointnas bench` runs a model and compared with predict(). Calibration fits the table's
// per-workload correction on such runs (fit_calibration, profile/calibration.h); validation
// reports prediction against measurement on others.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"
#include "jointnas/model/llama.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/timing.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

// How the sampled architectures are built and timed.
struct SampleOptions {
  model::RuntimeOptions runtime;  // device and compute dtype of the models (and of predict())
  TimingPlan plan;                // per architecture; model_timing_plan() is what bench uses
  // Interleaved rounds (median over rounds, every model kept in memory); 0: the device's default,
  // 1 on CUDA, 5 on the CPU.
  int rounds = 0;
};

// One sampled architecture: its blueprint, the prediction and the measurement.
struct MeasuredArch {
  std::vector<model::LayerSpec> specs;
  int64_t hidden = 0;
  int64_t kept = 0;          // blocks that run
  double predicted_ms = 0;   // predict() under the table as it is (calibrated or not)
  double measured_ms = 0;    // median of the timings (over rounds)
  int64_t predicted_peak_bytes = 0;
  int64_t measured_peak_bytes = -1;  // the caching allocator's peak, CUDA and one round only
};

// `n` random architectures of `space` (seeded by `seed`; a droppable block is dropped with
// probability 0.2, or, with `spread_depth`, from 0 to 0.6 across the sample so that the block
// count spreads), each predicted under `table` and `w` and measured: decode at the workload's
// context, prefill of its tokens otherwise. `what` tags the log lines ("calibrate", "validate").
std::vector<MeasuredArch> measure_random_architectures(const model::LlamaConfig& base, const CostSpace& space,
                                                       const LatencyTable& table, const Workload& w, int n,
                                                       uint64_t seed, bool spread_depth, const SampleOptions& o,
                                                       const std::string& what);

// The calibration of measured runs whose predictions were uncalibrated: fit_calibration over
// (predicted, kept, measured), and memory_bytes the median of measured minus predicted peak over
// the runs that measured one (0 when none did).
LatencyTable::Calibration calibration_from(const std::vector<MeasuredArch>& runs, const std::string& workload_name);

// Measures `n` >= 3 random architectures (spread depth; seed `seed` + 1000003, so that the sample
// differs from validate()'s under the same seed) with `table`'s calibration for `w` removed, fits
// calibration_from() on them, and stores it in `table` for `w`. Returns it.
LatencyTable::Calibration calibrate(const model::LlamaConfig& base, const CostSpace& space, LatencyTable& table,
                                    const Workload& w, int n, uint64_t seed, const SampleOptions& o);

// Prediction against measurement over sampled architectures.
struct Validation {
  std::vector<MeasuredArch> archs;
  bool calibrated = false;  // whether the table held a calibration for the workload
  // |predicted - measured| / measured over the architectures: latency, and peak memory where
  // measured (CUDA).
  double median_abs_rel_error = 0, max_abs_rel_error = 0;
  std::optional<double> peak_median_abs_rel_error, peak_max_abs_rel_error;
  // {architectures, calibrated, median_abs_rel_error, max_abs_rel_error, rows: [{hidden,
  // layers_kept, predicted_ms, measured_ms, rel_error, predicted_peak_bytes, layers,
  // [measured_peak_bytes, peak_rel_error]}], [peak_memory_median_abs_rel_error,
  // peak_memory_max_abs_rel_error]} (docs/benchmarks.md, scripts/plot_profile_validation.py).
  Json to_json() const;
};
// The summary of measured architectures (>= 1).
Validation summarize_validation(std::vector<MeasuredArch> archs, bool calibrated);

// Measures `n` >= 1 random architectures (drop probability 0.2, seed `seed`) and summarizes them.
Validation validate(const model::LlamaConfig& base, const CostSpace& space, const LatencyTable& table,
                    const Workload& w, int n, uint64_t seed, const SampleOptions& o);

// One architecture to time: a model's shapes and formats (built with random weights).
struct Blueprint {
  model::LlamaConfig config;
  std::vector<model::LayerSpec> specs;
};
struct MeasuredBlueprint {
  double ms = 0;                  // median over the rounds
  double best_ms = 0;             // the fastest round: the model undisturbed (noise only slows)
  std::vector<double> rounds_ms;  // one timing per round, in round order
};
// Times every blueprint as `jointnas bench` times a model (decode at the workload's context,
// prefill of its tokens otherwise), in o.rounds interleaved rounds (0: 1 on CUDA, one model alive
// at a time; 15 on the CPU, every model alive, warmed up once and then timed for 2 x
// o.plan.measure_ms / rounds per round). Random weights seeded by `seed` + index.
std::vector<MeasuredBlueprint> measure_blueprints(const std::vector<Blueprint>& blueprints, const Workload& w,
                                                  uint64_t seed, const SampleOptions& o, const std::string& what);
// a's fastest round over ref's, both measured in the same rounds. On this project's 2-core VM the
// same architecture loaded three times measured 0.606-0.646x of the original by the median of
// per-round ratios, and 0.378-0.380 ms by the fastest round (docs/pareto.md).
double best_ratio(const MeasuredBlueprint& a, const MeasuredBlueprint& ref);

// "h4x16/i96/bf16,bf16,w8a16,bf16 - ..." : one entry per layer, "-" for a skipped one.
std::string describe_layers(const std::vector<model::LayerSpec>& specs);

}  // namespace jointnas::profile
