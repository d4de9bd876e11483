// Calibration and validation on sampled architectures (see calibrate.h).
#include "jointnas/profile/calibrate.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <random>

#include <c10/core/ScalarType.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/profile/calibration.h"
#include "jointnas/profile/predict.h"

namespace jointnas::profile {
namespace {

// The workload's end-to-end latency of `m`, timed as `jointnas bench` times a model, so that the
// calibration predicts what bench measures.
double measure_model(const model::LlamaModel& m, const Workload& w, const TimingPlan& plan) {
  return w.kind == "decode" ? measure_decode(m, w.batch, w.context, plan).stats.median
                            : measure_prefill(m, w.batch, w.tokens, plan).stats.median;
}

// More rounds measure every kept model round-robin, each round a short timing, so that a slow
// spell of a shared host falls on every architecture alike and the median over rounds drops it.
// times[i][k]: model i in round k.
std::vector<std::vector<double>> time_in_rounds(const std::vector<std::unique_ptr<model::LlamaModel>>& alive,
                                                const Workload& w, const TimingPlan& plan, int rounds,
                                                const std::string& what) {
  std::vector<std::function<double()>> timers;
  for (const auto& m : alive) timers.push_back([&, mp = m.get()] { return measure_model(*mp, w, plan); });
  return interleaved_rounds(timers, rounds, [&](int k) {
    JNAS_LOG_INFO("[{}] round {}/{} of {} architectures", what, k + 1, rounds, alive.size());
  });
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void measure_in_rounds(std::vector<MeasuredArch>& out, const std::vector<std::unique_ptr<model::LlamaModel>>& alive,
                       const Workload& w, const TimingPlan& plan, int rounds, const std::string& what) {
  const std::vector<std::vector<double>> t = time_in_rounds(alive, w, plan, rounds, what);
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) {
    MeasuredArch& r = out[i];
    r.measured_ms = median_of(t[i]);
    JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%; rounds {:.4f} "
                  "to {:.4f})",
                  what, i + 1, n, r.hidden, r.kept, r.predicted_ms, r.measured_ms,
                  100 * (r.predicted_ms - r.measured_ms) / r.measured_ms, *std::min_element(t[i].begin(), t[i].end()),
                  *std::max_element(t[i].begin(), t[i].end()));
  }
}

// The plan of one round when there are `rounds`: each round times for a share of the plan.
TimingPlan round_plan(TimingPlan plan, int rounds) {
  if (rounds > 1) {
    plan.warmup_ms /= 2;
    plan.measure_ms = std::max(100.0, plan.measure_ms / rounds * 2);
  }
  return plan;
}

}  // namespace

std::vector<MeasuredArch> measure_random_architectures(const model::LlamaConfig& base, const CostSpace& space,
                                                       const LatencyTable& table, const Workload& w, int n,
                                                       uint64_t seed, bool spread_depth, const SampleOptions& o,
                                                       const std::string& what) {
  JNAS_CHECK_CONFIG(n >= 1, "{}: needs at least 1 architecture, got {}", what, n);
  const c10::Device device = o.runtime.device;
  std::mt19937_64 rng(seed);
  // One round: every architecture built, measured and freed in turn (the peak memory is read on
  // CUDA). More rounds keep every model alive: on this project's 2-core CPU VM one architecture
  // measured 0.66x to 1.24x its own earlier time a minute apart (docs/benchmarks.md).
  const int rounds = o.rounds > 0 ? o.rounds : (device.is_cuda() ? 1 : 5);
  const TimingPlan plan = round_plan(o.plan, rounds);
  const int64_t elt = static_cast<int64_t>(c10::elementSize(o.runtime.dtype));
  std::vector<MeasuredArch> out;
  std::vector<std::unique_ptr<model::LlamaModel>> alive;
  for (int i = 0; i < n; ++i) {
    // Spread depth: the per-block term of the calibration is then not collinear with the op sum.
    const double drop = spread_depth ? (n > 1 ? 0.6 * i / (n - 1) : 0.2) : 0.2;
    const Selection sel = random_selection(space, rng, drop);
    auto [c, specs] = select(base, space, sel);
    const Cost cost = predict(c, specs, table, w, elt);
    reset_peak_memory(device);
    auto m = std::make_unique<model::LlamaModel>(
        model::LlamaModel::random(c, o.runtime, seed + static_cast<uint64_t>(i), specs));
    // Random weights are generated in the compute dtype and then packed: that transient is the
    // builder's, not the deployed model's, so the peak is counted from the finished model.
    reset_peak_memory(device);
    int64_t kept = 0;
    for (const auto& sp : specs) kept += sp.skip ? 0 : 1;
    MeasuredArch r{specs, c.hidden_size, kept, cost.latency_ms, 0.0, cost.peak_bytes(), -1};
    if (rounds == 1) {
      r.measured_ms = measure_model(*m, w, plan);
      r.measured_peak_bytes = peak_memory(device);
      JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%)", what,
                    i + 1, n, c.hidden_size, kept, r.predicted_ms, r.measured_ms,
                    100 * (r.predicted_ms - r.measured_ms) / r.measured_ms);
    } else {
      alive.push_back(std::move(m));
    }
    out.push_back(std::move(r));
  }
  if (rounds > 1) measure_in_rounds(out, alive, w, plan, rounds, what);
  return out;
}

LatencyTable::Calibration calibration_from(const std::vector<MeasuredArch>& runs, const std::string& workload_name) {
  std::vector<std::array<double, 3>> fit_runs;
  std::vector<int64_t> mem_residuals;  // measured minus predicted peak, bytes (CUDA)
  for (const MeasuredArch& r : runs) {
    fit_runs.push_back({r.predicted_ms, static_cast<double>(r.kept), r.measured_ms});
    if (r.measured_peak_bytes >= 0) mem_residuals.push_back(r.measured_peak_bytes - r.predicted_peak_bytes);
  }
  LatencyTable::Calibration cal = fit_calibration(fit_runs);
  if (!mem_residuals.empty()) {
    std::sort(mem_residuals.begin(), mem_residuals.end());
    cal.memory_bytes = mem_residuals[mem_residuals.size() / 2];
    JNAS_LOG_INFO("[calibrate] {}: peak memory = prediction {:+.1f} MB (residuals {:+.1f} to {:+.1f} MB)",
                  workload_name, cal.memory_bytes / 1e6, mem_residuals.front() / 1e6, mem_residuals.back() / 1e6);
  }
  return cal;
}

LatencyTable::Calibration calibrate(const model::LlamaConfig& base, const CostSpace& space, LatencyTable& table,
                                    const Workload& w, int n, uint64_t seed, const SampleOptions& o) {
  // The fit's own precondition, checked before any architecture is built and timed.
  JNAS_CHECK_CONFIG(n >= 3, "calibration needs at least 3 measured runs, got {}", n);
  table.calibration.erase(w.name());  // the fit maps uncalibrated predictions
  const LatencyTable::Calibration cal =
      calibration_from(measure_random_architectures(base, space, table, w, n, seed + 1000003, true, o, "calibrate"),
                       w.name());
  table.calibration[w.name()] = cal;
  JNAS_LOG_INFO("[calibrate] {}: latency = {:.4f} x sum + {:.4f} ms x blocks + {:.4f} ms ({} runs, {} set aside as "
                "outliers)",
                w.name(), cal.scale, cal.per_block_ms, cal.constant_ms, cal.runs, cal.outliers);
  return cal;
}

std::vector<MeasuredBlueprint> measure_blueprints(const std::vector<Blueprint>& blueprints, const Workload& w,
                                                  uint64_t seed, const SampleOptions& o, const std::string& what) {
  JNAS_CHECK_CONFIG(!blueprints.empty(), "{}: nothing to measure", what);
  const int rounds = o.rounds > 0 ? o.rounds : (o.runtime.device.is_cuda() ? 1 : 15);
  // Several rounds: each model warmed up once, then many short windows (this project's CPU VM has
  // slow spells about as long as a 100 ms window; ratios in the same round cancel them).
  TimingPlan plan = o.plan;
  TimingPlan warm = o.plan;
  if (rounds > 1) {
    warm.repeats = 1;
    warm.measure_ms = 0;
    plan.warmup = 0;
    plan.warmup_ms = 0;
    plan.repeats = std::max(3, o.plan.repeats / rounds);
    plan.measure_ms = std::max(20.0, 2 * o.plan.measure_ms / rounds);
  }
  std::vector<MeasuredBlueprint> out(blueprints.size());
  std::vector<std::unique_ptr<model::LlamaModel>> alive;
  for (size_t i = 0; i < blueprints.size(); ++i) {
    auto m = std::make_unique<model::LlamaModel>(
        model::LlamaModel::random(blueprints[i].config, o.runtime, seed + i, blueprints[i].specs));
    if (rounds == 1) {
      out[i].rounds_ms = {measure_model(*m, w, plan)};  // one model alive at a time (large models)
    } else {
      measure_model(*m, w, warm);
      alive.push_back(std::move(m));
    }
  }
  if (rounds > 1) {
    const std::vector<std::vector<double>> t = time_in_rounds(alive, w, plan, rounds, what);
    for (size_t i = 0; i < out.size(); ++i) out[i].rounds_ms = t[i];
  }
  for (MeasuredBlueprint& m : out) {
    m.ms = median_of(m.rounds_ms);
    m.best_ms = *std::min_element(m.rounds_ms.begin(), m.rounds_ms.end());
  }
  return out;
}

double best_ratio(const MeasuredBlueprint& a, const MeasuredBlueprint& ref) {
  JNAS_CHECK_CONFIG(a.rounds_ms.size() == ref.rounds_ms.size() && !a.rounds_ms.empty() && ref.best_ms > 0,
                    "best_ratio: measurements of different rounds");
  return a.best_ms / ref.best_ms;
}

Validation summarize_validation(std::vector<MeasuredArch> archs, bool calibrated) {
  JNAS_CHECK_CONFIG(!archs.empty(), "validation needs at least 1 measured architecture");
  Validation v;
  v.calibrated = calibrated;
  std::vector<double> errs, mem_errs;
  for (const MeasuredArch& r : archs) {
    errs.push_back(std::abs((r.predicted_ms - r.measured_ms) / r.measured_ms));
    if (r.measured_peak_bytes >= 0) {
      mem_errs.push_back(std::abs(static_cast<double>(r.predicted_peak_bytes - r.measured_peak_bytes) /
                                  static_cast<double>(r.measured_peak_bytes)));
    }
  }
  std::sort(errs.begin(), errs.end());
  v.median_abs_rel_error = errs[errs.size() / 2];
  v.max_abs_rel_error = errs.back();
  if (!mem_errs.empty()) {
    std::sort(mem_errs.begin(), mem_errs.end());
    v.peak_median_abs_rel_error = mem_errs[mem_errs.size() / 2];
    v.peak_max_abs_rel_error = mem_errs.back();
  }
  v.archs = std::move(archs);
  return v;
}

Json Validation::to_json() const {
  Json rows = Json::array();
  for (const MeasuredArch& r : archs) {
    Json row{{"hidden", r.hidden}, {"layers_kept", r.kept}, {"predicted_ms", r.predicted_ms},
             {"measured_ms", r.measured_ms}, {"rel_error", (r.predicted_ms - r.measured_ms) / r.measured_ms},
             {"predicted_peak_bytes", r.predicted_peak_bytes}, {"layers", describe_layers(r.specs)}};
    if (r.measured_peak_bytes >= 0) {
      row["measured_peak_bytes"] = r.measured_peak_bytes;
      row["peak_rel_error"] = static_cast<double>(r.predicted_peak_bytes - r.measured_peak_bytes) /
                              static_cast<double>(r.measured_peak_bytes);
    }
    rows.push_back(row);
  }
  Json j{{"architectures", static_cast<int>(archs.size())},
         {"calibrated", calibrated},
         {"median_abs_rel_error", median_abs_rel_error},
         {"max_abs_rel_error", max_abs_rel_error},
         {"rows", rows}};
  if (peak_median_abs_rel_error) {
    j["peak_memory_median_abs_rel_error"] = *peak_median_abs_rel_error;
    j["peak_memory_max_abs_rel_error"] = *peak_max_abs_rel_error;
  }
  return j;
}

Validation validate(const model::LlamaConfig& base, const CostSpace& space, const LatencyTable& table,
                    const Workload& w, int n, uint64_t seed, const SampleOptions& o) {
  return summarize_validation(measure_random_architectures(base, space, table, w, n, seed, false, o, "validate"),
                              table.calibration_for(w) != nullptr);
}

std::string describe_layers(const std::vector<model::LayerSpec>& specs) {
  std::string layers;
  for (const auto& sp : specs) {
    layers += sp.skip ? "- "
                      : fmt::format("h{}x{}/i{}/{},{},{},{} ", sp.num_attention_heads, sp.head_dim,
                                    sp.intermediate_size, sp.format_qkv, sp.format_o, sp.format_gate_up,
                                    sp.format_down);
  }
  return layers;
}

}  // namespace jointnas::profile
