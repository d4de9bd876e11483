// Fuzz target: the validation pass of `jointnas run` / `jointnas pareto` (pipeline::check) over a
// run config, then the plan it lets through. The config's files are replaced by real ones
// (stories260K and its search space from the repository, a scratch text file) so that inputs get
// past the file checks to the model, workload, budget, memory and study checks. Contract: every
// malformed config is a jointnas::Error; and a config check() accepts must give every stage
// options its own reader accepts (the stage's child process reads them back with the same ranges),
// so no stage can refuse a value the validation let through (issue 26: "one validation pass over
// the whole run config before any stage runs").
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/pipeline/run.h"
#include "jointnas/pipeline/run_config.h"

using namespace jointnas;

namespace {

// A stage's options written and read back as its child process reads them: a ConfigError here is a
// value check() should have refused.
template <class O>
void expect_stage_accepts(const O& o, const char* stage) {
  O back;
  try {
    opt::read(opt::write(o), back, opt::Origin{"stage options", ""}, "");
  } catch (const Error& e) {
    fuzz::fail(std::string("check() accepted a config whose ") + stage + " options are refused: " + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fuzz::ScratchDir scratch;
  static const std::string text = scratch.write(
      "text.txt", "Once upon a time, there was a little dog. It liked to play in the park.\n\nThe end.\n");
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    pipeline::RunConfig rc = pipeline::parse_run_config(yaml, scratch.path() + "/run.yaml");
    rc.model.value = std::string(JNAS_SOURCE_DIR) + "/models/stories260K/stories260K.bin";
    rc.search_space.value = std::string(JNAS_SOURCE_DIR) + "/configs/spaces/stories260k.yaml";
    rc.table.value.clear();
    rc.run_dir.value = scratch.path() + "/run";
    rc.data.calibration.value = text;
    if (!rc.data.train.empty()) rc.data.train.value = text;
    if (!rc.data.eval.empty()) rc.data.eval.value = text;
    const pipeline::RunMode mode = rc.has_pareto ? pipeline::RunMode::kStudy : pipeline::RunMode::kRun;
    pipeline::check(rc, mode);
    if (mode != pipeline::RunMode::kRun) return;
    const pipeline::RunPlan plan = pipeline::plan_run(rc, rc.run_dir);
    (void)pipeline::stage_jobs(plan);
    expect_stage_accepts(plan.importance, "importance");
    if (plan.profile) expect_stage_accepts(*plan.profile, "profile");
    expect_stage_accepts(plan.search, "search");
    expect_stage_accepts(plan.finetune, "finetune");
    expect_stage_accepts(plan.latency, "bench");
    if (plan.ppl_original) expect_stage_accepts(*plan.ppl_original, "eval ppl");
    if (plan.ppl_found) expect_stage_accepts(*plan.ppl_found, "eval ppl");
  });
  return 0;
}
