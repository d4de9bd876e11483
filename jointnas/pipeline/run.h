// `jointnas run CONFIG.yaml`: every stage of the pipeline in one run directory (importance ->
// profile -> search -> finetune -> bench -> eval -> report), each as a child process of the same
// binary whose options are the typed structs built here from the checked config (plan_run). A
// finished stage is recorded in RUN/stages.json and skipped when the run is started again; the
// search resumes from its own checkpoints. The closed loop re-holds the table to a tighter budget
// when the exported model misses the user's (docs/pipeline.md).
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "jointnas/pipeline/arch_stage.h"
#include "jointnas/pipeline/export_stage.h"
#include "jointnas/pipeline/run_config.h"
#include "jointnas/pipeline/stages.h"
#include "jointnas/pipeline/tasks_stage.h"
#include "jointnas/report/run_summary.h"

namespace jointnas::pipeline {

// `jointnas run CONFIG.yaml` and `jointnas pareto CONFIG.yaml`.
struct RunCommandOptions {
  opt::Path config;
  opt::Path out;              // the run directory (default: the config's run_dir, else runs/<config name>)
  int64_t closed_loop = -1;   // -1: the config's closed_loop
  bool dry_run = false;       // print the plan (every stage's command line) and stop
};
template <class V>
void fields(V& v, RunCommandOptions& o) {
  v(opt::Key{"config", "Run config YAML (configs/runs/)", "", nullptr, true}, o.config);
  v(opt::Key{"out", "Run directory (default: run_dir of the config, else runs/<config name>)"}, o.out);
  v(opt::Key{"closed_loop", "Closed-loop correction rounds (-1: the config's closed_loop; 0 = off)"}, o.closed_loop,
    opt::in<int64_t>(-1, 1000));
  v(opt::Key{"dry_run", "Check the config and print every stage's command line, then stop"}, o.dry_run);
}
// The run directory of a command: --out, else the config's run_dir, else runs/<config name>.
std::string run_directory(const RunCommandOptions& o, const RunConfig& c);

// The importance stage of a config, writing the permuted model to `permuted`; its profile stage,
// measuring the table into `table` on the target device.
ImportanceOptions importance_options(const RunConfig& c, const std::string& permuted);
ProfileStageOptions profile_options(const RunConfig& c, const std::string& permuted, const std::string& table);

// `model` written as one GGUF file `out` for the target llama.cpp: its formats as they are (ggml's
// types byte for byte, anything unquantized as f16), the embedding f16 (convert_hf_to_gguf's
// --outtype f16).
ExportOptions gguf_export_options(const RunConfig& c, const std::string& model, const std::string& out);

// The stages of one run, as typed options.
struct RunPlan {
  std::string run_dir, permuted, table, search_dir, exported;
  ImportanceOptions importance;
  std::optional<ProfileStageOptions> profile;  // absent when the config gives a table
  SearchOptions search;
  FinetuneStageOptions finetune;
  // Target llama.cpp: the original as f16 GGUF (RUN/original-f16.gguf, written once) and the found
  // model as GGUF (RUN/export/model.gguf, again after each closed-loop finetune); the latency stage
  // times these two files.
  std::optional<ExportOptions> export_original, export_found;
  BenchOptions latency;  // the original and the found model, timed together in interleaved rounds
  std::optional<PplOptions> ppl_original, ppl_found;
  std::optional<TasksOptions> tasks_original, tasks_found;  // the config's eval.tasks, in jointnas's runtime
  std::vector<ExportOptions> exports;  // the config's `export:`, run after the closed loop
};
RunPlan plan_run(const RunConfig& c, const std::string& run_dir);

// The bench of `model` for the config's workload: the decode step at its context, or its prefill,
// at its batch, on the target device (llama.cpp: `model` is a GGUF timed through libllama on this
// CPU with the config's threads).
BenchOptions workload_bench(const RunConfig& c, const std::string& model);

// The workload's latency of `models` timed together (bench --models, `eval.bench_rounds` rounds):
// on a noisy CPU, latencies compare only within the rounds of one process (the same model measured
// 0.8x-1.4x between processes here); the first model is the reference of the ratios.
BenchOptions workload_latency(const RunConfig& c, std::vector<std::string> models);
// bench --models takes a comma-separated list: a model or run directory whose path holds a comma
// is a ConfigError naming `key`, raised before any stage.
void check_listable_path(const std::string& path, const std::string& key);

// The latency of `model` in a bench --models log: its fastest round (noise only ever slows a
// round), for the decode step or the prefill; nullopt when the log does not hold it.
std::optional<double> latency_of(const Json& latency, const std::string& model, bool prefill);

// A stage as a child process: `jointnas <command> <every option>`, its stdout to `log`.
template <class O>
StageJob stage_job(const std::string& name, const std::vector<std::string>& command, const O& options,
                   const std::string& log) {
  std::vector<std::string> args = command;
  for (auto& a : opt::to_args(options)) args.push_back(std::move(a));
  return StageJob{name, std::move(args), log};
}
std::vector<StageJob> stage_jobs(const RunPlan& p);
// A GGUF export as stage `name` (export_original, export_found, closed_loop_K_export_found),
// logged in `logs`/export_original.json or export_found.json.
StageJob gguf_job(const std::string& name, const ExportOptions& e, const std::string& logs);
// The exports (export_gguf, export_hf): after the closed loop, from its final model.
std::vector<StageJob> export_jobs(const RunPlan& p);

// The closed loop (method.md): when the found model measures above the user's latency budget, the
// table's bias near this architecture (measured / predicted) tightens the budget the table is
// held to: budget * predicted / measured, times `aim` so that the next model lands inside the
// budget rather than on its edge (the measured fit's aim). Without it, a model 0.1 % over was
// held to a table budget 0.1 % lower, got about the same architecture, and two rounds later still
// measured 0.2 % over (fresh-clone demo, 2026-12-06). nullopt when nothing is to correct.
std::optional<double> closed_loop_budget(double budget_ms, double measured_ms, double predicted_ms,
                                         double aim = 0.985);

// The summary's values from what the stages wrote in `run_dir`.
report::RunSummary collect_summary(const RunConfig& c, const std::string& run_dir, const Json& stages);
// Writes RUN/summary.md and RUN/report.svg; returns the markdown.
std::string write_run_report(const RunConfig& c, const std::string& run_dir, const Json& stages);

// Runs (or resumes) the pipeline; returns the summary (markdown). `closed_loop` >= 0 overrides the
// config's rounds. `config_text` is recorded in stages.json: a run directory belongs to one config.
std::string run_pipeline(const RunConfig& c, const std::string& config_text, const std::string& run_dir,
                         int64_t closed_loop, const std::atomic<bool>& interrupt);

}  // namespace jointnas::pipeline
