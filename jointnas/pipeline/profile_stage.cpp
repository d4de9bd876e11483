// The `profile` stage; see profile_stage.h. The table, its calibration and its validation are the
// profile library's (profile/profiler.h, profile/calibrate.h).
#include "jointnas/pipeline/profile_stage.h"

#include "jointnas/core/file_lock.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/profile/calibrate.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/profiler.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/timing.h"
#include "jointnas/search/cost.h"

namespace jointnas::pipeline {
profile::CostSpace profile_space(const std::string& path, const model::LlamaConfig& cfg, const std::string& target) {
  if (path.empty()) return profile::cost_space_from_json(Json::object(), cfg, "(dense)");
  if (path.size() > 5 && (path.ends_with(".yaml") || path.ends_with(".yml"))) {
    return search::cost_space(search::SearchSpace::from_yaml_file(path, cfg, target), cfg, {});
  }
  return profile::cost_space_from_json(read_json_file(path), cfg, path);
}

Json run_profile(const ProfileStageOptions& o) {
  // The table is timing: other jointnas processes of the machine (a study beside this one) pause
  // their training loops meanwhile, as they do for the bench stage and the measured fit.
  const FileLock quiet(timing_lock_path());
  if (!quiet.held()) JNAS_LOG_WARN("[profile] cannot lock {}; timing unlocked", timing_lock_path());
  if (o.runtime == "llama.cpp") return run_profile_llamacpp(o);
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(o.config);
  const profile::CostSpace space = profile_space(o.space, cfg, ro.device.is_cuda() ? "cuda" : "cpu");
  const profile::Workload& w = o.workload;
  profile::ProfileOptions po;
  po.device = ro.device;
  po.dtype = ro.dtype;
  po.repeats = static_cast<int>(o.profile.repeats);
  po.warmup = static_cast<int>(o.profile.warmup);
  po.vocab = cfg.vocab_size;
  po.rms_eps = cfg.rms_norm_eps;
  const Json meta = profile::device_meta(po);
  profile::LatencyTable table = profile::load_reusable_table(o.out, meta);
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
  profile::stamp_meta(table, meta, w);
  table.save(o.out);
  Json j{{"out", o.out.str()}, {"entries", table.entries().size()}, {"required", keys.size()}, {"workload", w.to_json()}};
  const auto seed = static_cast<uint64_t>(o.seed);
  const profile::SampleOptions so{ro, profile::model_timing_plan(static_cast<int>(o.profile.warmup), static_cast<int>(o.profile.repeats)),
                                  static_cast<int>(o.profile.rounds)};
  if (o.profile.calibrate > 0) {
    j["calibration"] = profile::calibrate(cfg, space, table, w, static_cast<int>(o.profile.calibrate), seed, so).to_json();
    table.save(o.out);
  }
  if (o.profile.validate > 0) {
    j["validation"] = profile::validate(cfg, space, table, w, static_cast<int>(o.profile.validate), seed, so).to_json();
    if (!o.validate_out.empty()) write_file_atomic(o.validate_out, j["validation"].dump(1) + "\n");
  }
  return j;
}

}  // namespace jointnas::pipeline
