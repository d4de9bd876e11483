// `jointnas pareto CONFIG.yaml`: the joint search against the prune-then-quantize pipelines on the
// same model, data, table, kernels, finetune budget and evaluation, at several latency budgets;
// every point is exported, measured on the target device and evaluated; the report draws the
// measured Pareto fronts and computes the headline numbers from them (docs/pareto.md).
//
// Phases (each stage a child process, recorded in OUT/stages.json, skipped when done; a failed
// point is recorded and the others go on):
//   shared    importance, profile (the table), the dense and fastest architectures' cost
//   arch 1    joint searches; architecture-only (bf16) searches; rule architectures
//   arch 2    sequential: formats applied to the architecture-only result; precision-only search
//   finetune  every point, the same distillation budget
//   eval      perplexity + KL to the original, tasks            (`parallel` at once)
//   bench     measured latency on the target device             (one at a time, nothing beside it)
//   report    OUT/report/: pareto.md, points.json, headline.json, charts (PNG + SVG)
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "jointnas/pipeline/run.h"
#include "jointnas/pipeline/stages.h"
#include "jointnas/pipeline/study_plan.h"
#include "jointnas/report/pareto_report.h"

namespace jointnas::pipeline {

// `jointnas pareto`: the run command's options and the study's own.
struct ParetoCommandOptions {
  RunCommandOptions run;
  bool report_only = false;
  int64_t parallel = 0;  // 0: the config's pareto.parallel
};
template <class V>
void fields(V& v, ParetoCommandOptions& o) {
  v(opt::Key{"config", "Run config YAML with a 'pareto' section (configs/runs/)", "", nullptr, true}, o.run.config);
  v(opt::Key{"out", "Study directory (default: run_dir of the config, else runs/<config name>)"}, o.run.out);
  v(opt::Key{"report_only", "Only (re)write the report from what is measured (draws the charts here)"}, o.report_only);
  v(opt::Key{"parallel", "Stages at once for search / finetune / eval (0: the config's pareto.parallel)"}, o.parallel,
    opt::in<int64_t>(0, 64));
}

// Whether two exported model directories hold the same model (config.json and model.safetensors
// byte for byte). The latency stage times such models once (stages.json `same_model`), and each
// point reads its latency from the model that was timed.
bool same_model(const std::string& a, const std::string& b);

// The measured points of the study from what its stages wrote.
std::vector<report::MeasuredPoint> collect_points(const Study& s, const Stages& st);
report::StudyInfo study_info(const Study& s, const Stages& st);

// Runs (or resumes) the study; `report_only` rewrites the report from what is measured. Returns
// the report (markdown).
std::string run_study(Study s, const std::string& config_text, bool report_only, const std::atomic<bool>& interrupt);

}  // namespace jointnas::pipeline
