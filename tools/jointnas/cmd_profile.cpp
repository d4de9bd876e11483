// `jointnas profile`: measures the latency table a search space needs on this device, reusing
// (and extending) an existing table when its device, versions and dtype match; then, on request,
// calibrates and validates it on random sub-architectures (profile/calibrate.h).
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/profile/calibrate.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/profiler.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/timing.h"
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

// The run config's search space (YAML, docs/search.md) or the older JSON cost-space description.
profile::CostSpace load_space(const std::string& path, const model::LlamaConfig& cfg, const c10::Device& device) {
  if (path.empty()) return profile::cost_space_from_json(Json::object(), cfg, "(dense)");
  if (path.size() > 5 && (path.ends_with(".yaml") || path.ends_with(".yml"))) {
    return search::cost_space(search::SearchSpace::from_yaml_file(path, cfg, device.is_cuda() ? "cuda" : "cpu"), cfg,
                              {});
  }
  return profile::cost_space_from_json(read_json_file(path), cfg, path);
}

void print_text(const ProfileFlags& f, const Json& j, const profile::LatencyTable& table, size_t required,
                const profile::Workload& w) {
  std::cout << fmt::format("wrote {}: {} entries ({} needed by the space for {})\n", f.out, table.entries().size(),
                           required, w.name());
  if (f.validate <= 0) return;
  const Json& v = j["validation"];
  std::cout << fmt::format("validation on {} random sub-architectures: median |error| {:.1f}%, max {:.1f}%\n",
                           f.validate, 100 * v["median_abs_rel_error"].get<double>(),
                           100 * v["max_abs_rel_error"].get<double>());
  if (v.contains("peak_memory_max_abs_rel_error")) {
    std::cout << fmt::format("peak memory: median |error| {:.2f}%, max {:.2f}%\n",
                             100 * v["peak_memory_median_abs_rel_error"].get<double>(),
                             100 * v["peak_memory_max_abs_rel_error"].get<double>());
  }
}

void run(ProfileFlags& f) {
  model::RuntimeOptions ro = runtime_options(f.run);
  JNAS_CHECK_CONFIG(!f.config.empty(), "profile needs --config CONFIG.json (the model's shapes)");
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(f.config);
  const profile::CostSpace space = load_space(f.space, cfg, ro.device);
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
  const Json meta = profile::device_meta(o);
  profile::LatencyTable table = profile::load_reusable_table(f.out, meta);
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
  profile::stamp_meta(table, meta, w);
  table.save(f.out);
  Json j{{"out", f.out}, {"entries", table.entries().size()}, {"required", keys.size()}, {"workload", w.to_json()}};
  const profile::SampleOptions so{ro, profile::model_timing_plan(f.warmup, f.repeats), f.rounds};
  if (f.calibrate > 0) {
    j["calibration"] = profile::calibrate(cfg, space, table, w, f.calibrate, f.seed, so).to_json();
    table.save(f.out);
  }
  if (f.validate > 0) {
    j["validation"] = profile::validate(cfg, space, table, w, f.validate, f.seed, so).to_json();
    if (!f.validate_out.empty()) write_file_atomic(f.validate_out, j["validation"].dump(1) + "\n");
  }
  emit(f.run.format, j, [&] { print_text(f, j, table, keys.size(), w); });
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
