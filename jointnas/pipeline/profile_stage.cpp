// The `profile` stage; see profile_stage.h.
#include "jointnas/pipeline/profile_stage.h"

#include <algorithm>
#include <memory>
#include <random>

#include <c10/core/ScalarType.h>
#include <fmt/format.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/profile/profiler.h"
#include "jointnas/search/cost.h"

namespace jointnas::pipeline {
namespace {

// The search space as JSON (the older form of `--space`): {"hidden": [..], "kv_heads": 8,
// "head_dim": 128, "layers": [{"heads": [..], "intermediate": [..], "formats": [..]} | one object
// for all layers]}.
profile::CostSpace space_from_json(const Json& j, const model::LlamaConfig& c, const std::string& src) {
  profile::CostSpace s;
  auto ints = [&](const Json& o, const char* k, std::vector<int64_t> dflt) {
    if (!o.contains(k)) return dflt;
    JNAS_CHECK_CONFIG(o[k].is_array(), "{}: '{}' must be a list of integers", src, k);
    std::vector<int64_t> v;
    for (const auto& e : o[k]) {
      JNAS_CHECK_CONFIG(e.is_number_integer() && e.get<int64_t>() > 0, "{}: '{}' must hold positive integers", src, k);
      v.push_back(e.get<int64_t>());
    }
    return v;
  };
  s.hidden = ints(j, "hidden", {c.hidden_size});
  const int64_t kv_heads = get_int(j, "kv_heads", src).value_or(c.num_key_value_heads);
  const int64_t head_dim = get_int(j, "head_dim", src).value_or(c.head_dim);
  auto layer = [&](const Json& o) {
    profile::LayerSpace l;
    for (int64_t h : ints(o, "heads", {c.num_attention_heads})) l.attention.push_back({h, kv_heads, head_dim, 0});
    l.intermediate = ints(o, "intermediate", {c.intermediate_size});
    std::vector<std::string> formats{"bf16"};
    if (o.contains("formats")) {
      formats.clear();
      for (const auto& f : o["formats"]) formats.push_back(quant::find_format(f.get<std::string>()).name);
    }
    l.formats_qkv = l.formats_o = l.formats_gate_up = l.formats_down = formats;
    l.can_skip = o.value("can_skip", false);
    return l;
  };
  const Json lj = j.contains("layers") ? j["layers"] : Json::object();
  if (lj.is_array()) {
    JNAS_CHECK_CONFIG(static_cast<int64_t>(lj.size()) == c.num_hidden_layers, "{}: 'layers' lists {} layers, the model has {}",
                      src, lj.size(), c.num_hidden_layers);
    for (const auto& e : lj) s.layers.push_back(layer(e));
  } else {
    s.layers.assign(static_cast<size_t>(c.num_hidden_layers), layer(lj));
  }
  return s;
}

profile::CostSpace load_space(const ProfileStageOptions& o, const model::LlamaConfig& cfg, const model::RuntimeOptions& ro) {
  if (o.space.empty()) return space_from_json(Json::object(), cfg, "(dense)");
  const std::string& p = o.space;
  if (p.size() > 5 && (p.ends_with(".yaml") || p.ends_with(".yml"))) {
    return search::cost_space(search::SearchSpace::from_yaml_file(p, cfg, ro.device.is_cuda() ? "cuda" : "cpu"), cfg, {});
  }
  return space_from_json(read_json_file(p), cfg, p);
}

// One random architecture run end to end: {specs, prediction, kept blocks, measurement}.
struct Run {
  std::vector<model::LayerSpec> specs;
  int64_t hidden = 0;
  double pred = 0;
  int64_t kept = 0;
  double ms = 0;
  int64_t pred_peak = 0, measured_peak = -1;  // bytes; measured on CUDA only
};

// Random heterogeneous sub-architectures of the space, run by the runtime (random weights at their
// exact shapes and formats). Calibration spreads the block count (drop probability 0 .. 0.6 across
// its runs) so that the per-block term is not collinear with the op sum; validation drops with
// probability 0.2. With several rounds every model stays alive and is measured round-robin, each
// round a short timing, so that a slow spell of a shared host falls on every architecture alike
// and the median over rounds drops it.
std::vector<Run> sample(const ProfileStageOptions& o, const model::LlamaConfig& cfg, const profile::CostSpace& space,
                        const profile::LatencyTable& table, const model::RuntimeOptions& ro, int64_t n, uint64_t seed,
                        const char* what, bool spread_depth) {
  const profile::Workload& w = o.workload;
  std::mt19937_64 rng(seed);
  std::vector<Run> out;
  const int64_t rounds = o.profile.rounds > 0 ? o.profile.rounds : (ro.device.is_cuda() ? 1 : 5);
  profile::TimingPlan plan = profile::model_timing_plan(static_cast<int>(o.profile.warmup), static_cast<int>(o.profile.repeats));
  if (rounds > 1) {
    plan.warmup_ms /= 2;
    plan.measure_ms = std::max(100.0, plan.measure_ms / static_cast<double>(rounds) * 2);
  }
  auto measure = [&](const model::LlamaModel& m) {
    return w.kind == "decode" ? profile::measure_decode(m, w.batch, w.context, plan).stats.median
                              : profile::measure_prefill(m, w.batch, w.tokens, plan).stats.median;
  };
  const int64_t elt = static_cast<int64_t>(c10::elementSize(ro.dtype));
  std::vector<std::unique_ptr<model::LlamaModel>> alive;
  for (int64_t i = 0; i < n; ++i) {
    const double drop = spread_depth ? (n > 1 ? 0.6 * static_cast<double>(i) / static_cast<double>(n - 1) : 0.2) : 0.2;
    const profile::Selection sel = profile::random_selection(space, rng, drop);
    auto [c, specs] = profile::select(cfg, space, sel);
    const profile::Cost cost = profile::predict(c, specs, table, w, elt);
    profile::reset_peak_memory(ro.device);
    auto m = std::make_unique<model::LlamaModel>(model::LlamaModel::random(c, ro, seed + static_cast<uint64_t>(i), specs));
    // Random weights are generated in the compute dtype and then packed: that transient is the
    // builder's, not the deployed model's, so the peak is counted from the finished model.
    profile::reset_peak_memory(ro.device);
    int64_t kept = 0;
    for (const auto& sp : specs) kept += sp.skip ? 0 : 1;
    Run r{specs, c.hidden_size, cost.latency_ms, kept, 0.0, cost.peak_bytes(), -1};
    if (rounds == 1) {
      r.ms = measure(*m);  // timed as `jointnas bench` times a model
      r.measured_peak = profile::peak_memory(ro.device);
      JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%)", what, i + 1, n,
                    c.hidden_size, kept, r.pred, r.ms, 100 * (r.pred - r.ms) / r.ms);
    } else {
      alive.push_back(std::move(m));
    }
    out.push_back(std::move(r));
  }
  if (rounds == 1) return out;
  std::vector<std::vector<double>> t(out.size());
  for (int64_t k = 0; k < rounds; ++k) {
    for (size_t i = 0; i < out.size(); ++i) t[i].push_back(measure(*alive[i]));
    JNAS_LOG_INFO("[{}] round {}/{} of {} architectures", what, k + 1, rounds, out.size());
  }
  for (size_t i = 0; i < out.size(); ++i) {
    std::sort(t[i].begin(), t[i].end());
    out[i].ms = t[i][t[i].size() / 2];
    JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%; rounds {:.4f} to {:.4f})",
                  what, i + 1, n, out[i].hidden, out[i].kept, out[i].pred, out[i].ms,
                  100 * (out[i].pred - out[i].ms) / out[i].ms, t[i].front(), t[i].back());
  }
  return out;
}

Json calibrate(const ProfileStageOptions& o, profile::LatencyTable& table, std::vector<Run> runs_measured) {
  const std::string wn = o.workload.name();
  std::vector<std::array<double, 3>> runs;
  std::vector<int64_t> mem_residuals;  // measured minus predicted peak, bytes (CUDA)
  for (const auto& r : runs_measured) {
    runs.push_back({r.pred, static_cast<double>(r.kept), r.ms});
    if (r.measured_peak >= 0) mem_residuals.push_back(r.measured_peak - r.pred_peak);
  }
  profile::LatencyTable::Calibration cal = profile::fit_calibration(runs);
  if (!mem_residuals.empty()) {
    std::sort(mem_residuals.begin(), mem_residuals.end());
    cal.memory_bytes = mem_residuals[mem_residuals.size() / 2];
    JNAS_LOG_INFO("[calibrate] {}: peak memory = prediction {:+.1f} MB (residuals {:+.1f} to {:+.1f} MB)", wn,
                  cal.memory_bytes / 1e6, mem_residuals.front() / 1e6, mem_residuals.back() / 1e6);
  }
  table.calibration[wn] = cal;
  table.save(o.out);
  JNAS_LOG_INFO("[calibrate] {}: latency = {:.4f} x sum + {:.4f} ms x blocks + {:.4f} ms ({} runs, {} set aside as outliers)",
                wn, cal.scale, cal.per_block_ms, cal.constant_ms, cal.runs, cal.outliers);
  return Json{{"scale", cal.scale},       {"per_block_ms", cal.per_block_ms}, {"constant_ms", cal.constant_ms},
              {"runs", cal.runs},         {"outliers", cal.outliers},         {"memory_bytes", cal.memory_bytes}};
}

Json validate(const ProfileStageOptions& o, const profile::LatencyTable& table, const std::vector<Run>& runs) {
  Json rows = Json::array();
  std::vector<double> errs, mem_errs;
  for (const auto& r : runs) {
    const double err = (r.pred - r.ms) / r.ms;
    errs.push_back(std::abs(err));
    std::string layers;
    for (const auto& sp : r.specs) {
      layers += sp.skip ? "- "
                        : fmt::format("h{}x{}/i{}/{},{},{},{} ", sp.num_attention_heads, sp.head_dim, sp.intermediate_size,
                                      sp.format_of(0), sp.format_of(1), sp.format_of(2), sp.format_of(3));
    }
    Json row{{"hidden", r.hidden}, {"layers_kept", r.kept}, {"predicted_ms", r.pred}, {"measured_ms", r.ms},
             {"rel_error", err}, {"predicted_peak_bytes", r.pred_peak}, {"layers", layers}};
    if (r.measured_peak >= 0) {
      row["measured_peak_bytes"] = r.measured_peak;
      const double me = static_cast<double>(r.pred_peak - r.measured_peak) / static_cast<double>(r.measured_peak);
      row["peak_rel_error"] = me;
      mem_errs.push_back(std::abs(me));
    }
    rows.push_back(row);
  }
  std::sort(errs.begin(), errs.end());
  Json v{{"architectures", runs.size()},
         {"calibrated", table.calibration_for(o.workload) != nullptr},
         {"median_abs_rel_error", errs[errs.size() / 2]},
         {"max_abs_rel_error", errs.back()},
         {"rows", rows}};
  if (!mem_errs.empty()) {
    std::sort(mem_errs.begin(), mem_errs.end());
    v["peak_memory_median_abs_rel_error"] = mem_errs[mem_errs.size() / 2];
    v["peak_memory_max_abs_rel_error"] = mem_errs.back();
  }
  if (!o.validate_out.empty()) write_file_atomic(o.validate_out, v.dump(1) + "\n");
  return v;
}

// The table at --out when it was measured under the same conditions, else a new one.
profile::LatencyTable open_table(const ProfileStageOptions& o, const Json& meta) {
  if (!file_exists(o.out)) return {};
  profile::LatencyTable old = profile::LatencyTable::load(o.out);
  Json om = old.meta;
  om.erase("workloads");
  if (om == meta) {
    JNAS_LOG_INFO("[profile] reusing {} ({} entries)", o.out.str(), old.entries().size());
    return old;
  }
  JNAS_LOG_WARN("[profile] {} was measured under other conditions ({}); starting a new table", o.out.str(), om.dump());
  return {};
}

}  // namespace

Json run_profile(const ProfileStageOptions& o) {
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(o.config);
  const profile::CostSpace space = load_space(o, cfg, ro);
  const profile::Workload& w = o.workload;
  profile::ProfileOptions po;
  po.device = ro.device;
  po.dtype = ro.dtype;
  po.repeats = static_cast<int>(o.profile.repeats);
  po.warmup = static_cast<int>(o.profile.warmup);
  po.vocab = cfg.vocab_size;
  po.rms_eps = cfg.rms_norm_eps;
  Json meta = profile::device_meta(po);
  profile::LatencyTable table = open_table(o, meta);
  const std::vector<std::string> keys = profile::required_keys(cfg, space, w, po.device.is_cpu());
  int64_t last_pct = -1;
  profile::profile_keys(table, keys, po, o.force, [&](int64_t done, int64_t total, const std::string& key, double eta) {
    const int64_t pct = 100 * done / total;
    if (pct / 5 != last_pct / 5 || done == total) {
      JNAS_LOG_INFO("[profile] {}/{} ({}%) eta {:.0f} s  {}", done, total, pct, eta, key);
      last_pct = pct;
      table.save(o.out);  // a killed profile keeps what it measured
    }
  });
  Json wl = table.meta.contains("workloads") ? table.meta["workloads"] : Json::array();
  if (std::find(wl.begin(), wl.end(), Json(w.name())) == wl.end()) wl.push_back(w.name());
  meta["workloads"] = wl;
  table.meta = meta;
  table.save(o.out);
  Json j{{"out", o.out.str()}, {"entries", table.entries().size()}, {"required", keys.size()}, {"workload", w.to_json()}};
  const auto seed = static_cast<uint64_t>(o.seed);
  if (o.profile.calibrate > 0) {
    table.calibration.erase(w.name());
    j["calibration"] = calibrate(o, table, sample(o, cfg, space, table, ro, o.profile.calibrate, seed + 1000003, "calibrate", true));
  }
  if (o.profile.validate > 0) {
    j["validation"] = validate(o, table, sample(o, cfg, space, table, ro, o.profile.validate, seed, "validate", false));
  }
  return j;
}

}  // namespace jointnas::pipeline
