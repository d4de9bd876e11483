// `jointnas profile`: measures the latency table a search space needs on this device, reusing
// (and extending) an existing table when its device, versions and dtype match.
#include <algorithm>
#include <iostream>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/profile/profiler.h"
#include "jointnas/search/cost.h"

namespace jointnas::cli {
namespace {

struct ProfileFlags {
  RunFlags run;
  std::string config, space, out, workload_kind = "decode";
  int64_t batch = 1, context = 512, tokens = 2048;
  int repeats = 20, warmup = 3;
  bool force = false;
  int calibrate = 0;  // random sub-architectures measured to fit the table's calibration
  int validate = 0;   // random sub-architectures to build, run and compare with the prediction
  uint64_t seed = 0;
  std::string validate_out;
  // End-to-end runs measured in this many interleaved rounds (median over rounds); 0 = the
  // device's default: 1 on CUDA, 5 on the CPU.
  int rounds = 0;
};

// The search space as JSON (the YAML search-space config of issue 5 maps onto this):
// {"hidden": [..], "kv_heads": 8, "head_dim": 128, "layers": [{"heads": [..], "intermediate":
// [..], "formats": [..]} | one object for all layers]}.
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
    JNAS_CHECK_CONFIG(static_cast<int64_t>(lj.size()) == c.num_hidden_layers,
                      "{}: 'layers' lists {} layers, the model has {}", src, lj.size(), c.num_hidden_layers);
    for (const auto& e : lj) s.layers.push_back(layer(e));
  } else {
    s.layers.assign(static_cast<size_t>(c.num_hidden_layers), layer(lj));
  }
  return s;
}

void run(ProfileFlags& f) {
  model::RuntimeOptions ro = runtime_options(f.run);
  JNAS_CHECK_CONFIG(!f.config.empty(), "profile needs --config CONFIG.json (the model's shapes)");
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(f.config);
  auto is_yaml = [](const std::string& p) {
    return p.size() > 5 && (p.ends_with(".yaml") || p.ends_with(".yml"));
  };
  // The run config's search space (YAML, issue 5) or the older JSON cost-space description.
  const profile::CostSpace space =
      f.space.empty() ? space_from_json(Json::object(), cfg, "(dense)")
      : is_yaml(f.space)
          ? search::cost_space(search::SearchSpace::from_yaml_file(f.space, cfg, ro.device.is_cuda() ? "cuda" : "cpu"), cfg, {})
          : space_from_json(read_json_file(f.space), cfg, f.space);
  profile::Workload w;
  w.kind = f.workload_kind;
  w.batch = f.batch;
  w.context = f.context;
  w.tokens = f.tokens;
  profile::ProfileOptions o;
  o.device = ro.device;
  o.dtype = ro.dtype;
  o.repeats = f.repeats;
  o.warmup = f.warmup;
  o.vocab = cfg.vocab_size;
  o.rms_eps = cfg.rms_norm_eps;
  profile::LatencyTable table;
  Json meta = profile::device_meta(o);
  if (file_exists(f.out)) {
    profile::LatencyTable old = profile::LatencyTable::load(f.out);
    Json om = old.meta;
    om.erase("workloads");
    if (om == meta) {
      table = std::move(old);
      JNAS_LOG_INFO("[profile] reusing {} ({} entries)", f.out, table.entries().size());
    } else {
      JNAS_LOG_WARN("[profile] {} was measured under other conditions ({}); starting a new table",
                    f.out, om.dump());
    }
  }
  const std::vector<std::string> keys = profile::required_keys(cfg, space, w, o.device.is_cpu());
  int64_t last_pct = -1;
  profile::profile_keys(table, keys, o, f.force, [&](int64_t done, int64_t total, const std::string& key, double eta) {
    const int64_t pct = 100 * done / total;
    if (pct / 5 != last_pct / 5 || done == total) {
      JNAS_LOG_INFO("[profile] {}/{} ({}%) eta {:.0f} s  {}", done, total, pct, eta, key);
      last_pct = pct;
      table.save(f.out);  // a killed profile keeps what it measured
    }
  });
  Json wl = table.meta.contains("workloads") ? table.meta["workloads"] : Json::array();
  if (std::find(wl.begin(), wl.end(), Json(w.name())) == wl.end()) wl.push_back(w.name());
  meta["workloads"] = wl;
  table.meta = meta;
  table.save(f.out);
  Json j{{"out", f.out}, {"entries", table.entries().size()}, {"required", keys.size()}, {"workload", w.to_json()}};
  // Random heterogeneous sub-architectures of the space, run end to end by the runtime (random
  // weights at their exact shapes and formats): {architecture, predicted, kept blocks, measured}.
  const int64_t elt = static_cast<int64_t>(c10::elementSize(ro.dtype));
  // Calibration spreads the block count (drop probability 0 .. 0.6 across its runs) so that the
  // per-block term is not collinear with the op sum; validation drops with probability 0.2.
  auto sample = [&](int n, uint64_t seed, const char* what, bool spread_depth) {
    std::mt19937_64 rng(seed);
    struct Run {
      std::vector<model::LayerSpec> specs;
      int64_t hidden = 0;
      double pred = 0;
      int64_t kept = 0;
      double ms = 0;
      int64_t pred_peak = 0, measured_peak = -1;  // bytes; measured on CUDA only
    };
    std::vector<Run> out;
    // One round: every architecture built, measured and freed in turn (the peak memory is read on
    // CUDA). More rounds keep every model alive and measure them round-robin, each round a short
    // timing, so that a slow spell of a shared host falls on every architecture alike and the
    // median over rounds drops it: on this project's 2-core CPU VM one architecture measured
    // 0.66x to 1.24x its own earlier time a minute apart (docs/benchmarks.md).
    const int rounds = f.rounds > 0 ? f.rounds : (ro.device.is_cuda() ? 1 : 5);
    profile::TimingPlan plan = profile::model_timing_plan(f.warmup, f.repeats);
    if (rounds > 1) {
      plan.warmup_ms /= 2;
      plan.measure_ms = std::max(100.0, plan.measure_ms / rounds * 2);
    }
    auto measure = [&](const model::LlamaModel& m) {
      return w.kind == "decode" ? profile::measure_decode(m, w.batch, w.context, plan).stats.median
                                : profile::measure_prefill(m, w.batch, w.tokens, plan).stats.median;
    };
    std::vector<std::unique_ptr<model::LlamaModel>> alive;
    for (int i = 0; i < n; ++i) {
      const double drop = spread_depth ? (n > 1 ? 0.6 * i / (n - 1) : 0.2) : 0.2;
      const profile::Selection sel = profile::random_selection(space, rng, drop);
      auto [c, specs] = profile::select(cfg, space, sel);
      const profile::Cost cost = profile::predict(c, specs, table, w, elt);
      const double pred = cost.latency_ms;
      profile::reset_peak_memory(ro.device);
      auto m = std::make_unique<model::LlamaModel>(
          model::LlamaModel::random(c, ro, seed + static_cast<uint64_t>(i), specs));
      // Random weights are generated in the compute dtype and then packed: that transient is the
      // builder's, not the deployed model's, so the peak is counted from the finished model.
      profile::reset_peak_memory(ro.device);
      int64_t kept = 0;
      for (const auto& sp : specs) kept += sp.skip ? 0 : 1;
      Run r{specs, c.hidden_size, pred, kept, 0.0, cost.peak_bytes(), -1};
      if (rounds == 1) {
        // Timed as `jointnas bench` times a model, so that the calibration predicts what bench measures.
        r.ms = measure(*m);
        r.measured_peak = profile::peak_memory(ro.device);
        JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%)", what,
                      i + 1, n, c.hidden_size, kept, pred, r.ms, 100 * (pred - r.ms) / r.ms);
      } else {
        alive.push_back(std::move(m));
      }
      out.push_back(std::move(r));
    }
    if (rounds > 1) {
      std::vector<std::vector<double>> t(out.size());
      for (int k = 0; k < rounds; ++k) {
        for (size_t i = 0; i < out.size(); ++i) t[i].push_back(measure(*alive[i]));
        JNAS_LOG_INFO("[{}] round {}/{} of {} architectures", what, k + 1, rounds, out.size());
      }
      for (size_t i = 0; i < out.size(); ++i) {
        std::sort(t[i].begin(), t[i].end());
        out[i].ms = t[i][t[i].size() / 2];
        JNAS_LOG_INFO("[{}] {}/{}: hidden {}, {} blocks: predicted {:.4f} ms, measured {:.4f} ms ({:+.1f}%; rounds {:.4f} "
                      "to {:.4f})",
                      what, i + 1, n, out[i].hidden, out[i].kept, out[i].pred, out[i].ms,
                      100 * (out[i].pred - out[i].ms) / out[i].ms, t[i].front(), t[i].back());
      }
    }
    return out;
  };
  if (f.calibrate > 0) {
    table.calibration.erase(w.name());
    std::vector<std::array<double, 3>> runs;
    std::vector<int64_t> mem_residuals;  // measured minus predicted peak, bytes (CUDA)
    for (const auto& r : sample(f.calibrate, f.seed + 1000003, "calibrate", true)) {
      runs.push_back({r.pred, static_cast<double>(r.kept), r.ms});
      if (r.measured_peak >= 0) mem_residuals.push_back(r.measured_peak - r.pred_peak);
    }
    profile::LatencyTable::Calibration cal = profile::fit_calibration(runs);
    if (!mem_residuals.empty()) {
      std::sort(mem_residuals.begin(), mem_residuals.end());
      cal.memory_bytes = mem_residuals[mem_residuals.size() / 2];
      JNAS_LOG_INFO("[calibrate] {}: peak memory = prediction {:+.1f} MB (residuals {:+.1f} to {:+.1f} MB)", w.name(),
                    cal.memory_bytes / 1e6, mem_residuals.front() / 1e6, mem_residuals.back() / 1e6);
    }
    table.calibration[w.name()] = cal;
    table.save(f.out);
    j["calibration"] = {{"scale", cal.scale}, {"per_block_ms", cal.per_block_ms}, {"constant_ms", cal.constant_ms},
                        {"runs", cal.runs}, {"outliers", cal.outliers}, {"memory_bytes", cal.memory_bytes}};
    JNAS_LOG_INFO("[calibrate] {}: latency = {:.4f} x sum + {:.4f} ms x blocks + {:.4f} ms ({} runs, {} set aside as "
                  "outliers)",
                  w.name(), cal.scale, cal.per_block_ms, cal.constant_ms, cal.runs, cal.outliers);
  }
  if (f.validate > 0) {
    Json rows = Json::array();
    std::vector<double> errs;
    std::vector<double> mem_errs;
    for (const auto& r : sample(f.validate, f.seed, "validate", false)) {
      const double err = (r.pred - r.ms) / r.ms;
      errs.push_back(std::abs(err));
      std::string layers;
      for (const auto& sp : r.specs) {
        layers += sp.skip ? "- " : fmt::format("h{}x{}/i{}/{},{},{},{} ", sp.num_attention_heads, sp.head_dim, sp.intermediate_size,
                                               sp.format_qkv, sp.format_o, sp.format_gate_up, sp.format_down);
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
    j["validation"] = {{"architectures", f.validate},
                       {"calibrated", table.calibration_for(w) != nullptr},
                       {"median_abs_rel_error", errs[errs.size() / 2]},
                       {"max_abs_rel_error", errs.back()},
                       {"rows", rows}};
    if (!mem_errs.empty()) {
      std::sort(mem_errs.begin(), mem_errs.end());
      j["validation"]["peak_memory_median_abs_rel_error"] = mem_errs[mem_errs.size() / 2];
      j["validation"]["peak_memory_max_abs_rel_error"] = mem_errs.back();
    }
    if (!f.validate_out.empty()) write_file_atomic(f.validate_out, j["validation"].dump(1) + "\n");
  }
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("wrote {}: {} entries ({} needed by the space for {})\n", f.out,
                             table.entries().size(), keys.size(), w.name());
    if (f.validate > 0) {
      std::cout << fmt::format("validation on {} random sub-architectures: median |error| {:.1f}%, max {:.1f}%\n",
                               f.validate, 100 * j["validation"]["median_abs_rel_error"].get<double>(),
                               100 * j["validation"]["max_abs_rel_error"].get<double>());
      if (j["validation"].contains("peak_memory_max_abs_rel_error")) {
        std::cout << fmt::format("peak memory: median |error| {:.2f}%, max {:.2f}%\n",
                                 100 * j["validation"]["peak_memory_median_abs_rel_error"].get<double>(),
                                 100 * j["validation"]["peak_memory_max_abs_rel_error"].get<double>());
      }
    }
  });
}

}  // namespace

void register_profile(CLI::App& app) {
  auto f = std::make_shared<ProfileFlags>();
  auto* sub = app.add_subcommand("profile", "Measure the latency table of a search space on this device");
  add_run_flags(sub, f->run, /*model_required=*/false);
  sub->add_option("--config", f->config, "config.json of the model whose shapes to profile")->required();
  sub->add_option("--space", f->space, "Search space: the run config's YAML (docs/search.md) or a JSON cost space (hidden, heads, intermediate, formats); default: the dense model");
  sub->add_option("--workload", f->workload_kind, "decode | prefill")
      ->check(CLI::IsMember({"decode", "prefill"}))
      ->capture_default_str();
  sub->add_option("--batch", f->batch, "Batch")->capture_default_str();
  sub->add_option("--context", f->context, "Decode context")->capture_default_str();
  sub->add_option("--tokens", f->tokens, "Prefill tokens")->capture_default_str();
  sub->add_option("--repeats", f->repeats, "Timed repeats per entry (median stored)")->capture_default_str();
  sub->add_option("--warmup", f->warmup, "Untimed calls per entry")->capture_default_str();
  sub->add_flag("--force", f->force, "Re-measure entries already in the table");
  sub->add_option("--calibrate", f->calibrate,
                  "Fit the table's calibration on this many measured random sub-architectures");
  sub->add_option("--validate", f->validate,
                  "Then build this many random sub-architectures, run them and compare with the prediction");
  sub->add_option("--seed", f->seed, "Seed of the validation sample")->capture_default_str();
  sub->add_option("--validate-out", f->validate_out, "Write the validation rows (JSON) here");
  sub->add_option("--rounds", f->rounds,
                  "Measure the calibration / validation architectures in this many interleaved rounds "
                  "(median over rounds; every model kept in memory); default 1 on CUDA, 5 on the CPU")
      ->check(CLI::Range(0, 100));
  sub->add_option("-o,--out", f->out, "Latency table JSON (extended in place when it matches)")->required();
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
