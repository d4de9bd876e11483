// The `profile` stage: measures the latency table a search space needs on this device (reusing and
// extending an existing table when its device, versions and dtype match), then optionally fits the
// table's calibration and validates its predictions on random sub-architectures run end to end.
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"
#include "jointnas/profile/cost_space.h"

namespace jointnas::pipeline {

// The run config's `profile:` section; the same flags on `jointnas profile`.
struct ProfileSettings {
  int64_t repeats = 20;
  int64_t warmup = 3;
  int64_t calibrate = 0;  // random sub-architectures measured to fit the table's calibration
  int64_t validate = 0;   // random sub-architectures to build, run and compare with the prediction
  // End-to-end runs measured in this many interleaved rounds (median over rounds); 0 = the
  // device's default: 1 on CUDA, 5 on the CPU.
  int64_t rounds = 0;
};
template <class V>
void fields(V& v, ProfileSettings& s) {
  v(opt::Key{"repeats", "Timed repeats per entry (median stored)"}, s.repeats, opt::in<int64_t>(1, 100000));
  v(opt::Key{"warmup", "Untimed calls per entry"}, s.warmup, opt::in<int64_t>(0, 100000));
  v(opt::Key{"calibrate", "Fit the table's calibration on this many measured random sub-architectures"}, s.calibrate,
    opt::in<int64_t>(0, 10000));
  v(opt::Key{"validate", "Then build this many random sub-architectures, run them and compare with the prediction"},
    s.validate, opt::in<int64_t>(0, 10000));
  v(opt::Key{"rounds", "Measure the calibration / validation architectures in this many interleaved rounds (median "
                       "over rounds; every model kept in memory); 0: 1 on CUDA, 5 on the CPU"},
    s.rounds, opt::in<int64_t>(0, 100));
}

struct ProfileStageOptions {
  ModelSettings run{{}, "cpu", "", 0, false};
  // jointnas: the table of this tool's runtime on run.device; llama.cpp: llama.cpp's CPU kernels
  // (ggml) with run.threads threads, calibrated and validated on GGUF exports (docs/llamacpp.md).
  std::string runtime = "jointnas";
  opt::Path config, space, out, validate_out;
  profile::Workload workload;
  ProfileSettings profile;
  bool force = false;
  int64_t seed = 0;
};
template <class V>
void fields(V& v, ProfileStageOptions& o) {
  fields(v, o.run);
  v(opt::Key{"runtime", "jointnas | llama.cpp: whose kernels the table measures (llama.cpp: ggml's CPU kernels, "
                        "--threads threads; docs/llamacpp.md)"},
    o.runtime, opt::Choices{"jointnas", "llama.cpp"});
  v(opt::Key{"config", "config.json of the model whose shapes to profile", nullptr, nullptr, true}, o.config);
  v(opt::Key{"space", "Search space: the run config's YAML (docs/search.md) or a JSON cost space (hidden, heads, "
                      "intermediate, formats); default: the dense model"},
    o.space);
  fields(v, o.workload);
  fields(v, o.profile);
  v(opt::Key{"force", "Re-measure entries already in the table"}, o.force);
  v(opt::Key{"seed", "Seed of the calibration and validation samples"}, o.seed, opt::at_least<int64_t>(0));
  v(opt::Key{"validate_out", "Write the validation rows (JSON) here"}, o.validate_out);
  v(opt::Key{"out", "Latency table JSON (extended in place when it matches)", "-o,--out", nullptr, true}, o.out);
}

// The cost space of `path`: the run config's search space (YAML, docs/search.md; `target` picks
// its default formats) or the older JSON cost-space description; the dense model when empty.
profile::CostSpace profile_space(const std::string& path, const model::LlamaConfig& cfg, const std::string& target);

// Measures (and calibrates / validates); returns {out, entries, required, workload, calibration?,
// validation?}.
Json run_profile(const ProfileStageOptions& o);
// run_profile for runtime llama.cpp (profile_llamacpp.cpp); run_profile calls it.
Json run_profile_llamacpp(const ProfileStageOptions& o);

}  // namespace jointnas::pipeline
