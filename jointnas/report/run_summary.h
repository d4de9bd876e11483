// The report of `jointnas run`: summary.md (the budget and the workload in words, measured and
// predicted latency, memory, parameters, perplexity, whether the budget is met, the speed-up and
// the quality drop, the architecture per layer with dropped blocks shown as dropped) and
// report.svg (per layer: attention and MLP width, formats). Pure functions of the values the
// stages wrote (pipeline/run.cpp collects them). Torch-free.
#pragma once

#include <optional>
#include <string>

#include "jointnas/core/json_util.h"

namespace jointnas::report {

struct RunSummary {
  std::string run_dir;
  Json workload;             // {kind, batch, context, tokens}
  Json budget;               // {latency_ms, memory_bytes, params} held by the search
  double budget_latency_ms = 0;  // the user's latency budget (a closed loop tightens the search's)
  std::string budget_text;       // as the user wrote it ("0.6x")
  Json dense, predicted;     // profile::Cost JSON of the original and the found model
  std::optional<double> measured_original_ms, measured_found_ms;
  int64_t measured_rounds = 0;  // both timed in one process, fastest of this many interleaved rounds
  // Who measured: "" for jointnas's runtime, "llama.cpp" for GGUF files through libllama (the
  // original as f16 GGUF; its version and thread count).
  std::string measured_runtime, measured_runtime_version;
  int64_t measured_threads = 0;
  std::optional<double> ppl_original, ppl_found;
  std::string eval_text;     // the perplexity text
  // Task accuracy (the config's eval.tasks): the `eval tasks` JSON of each model, {results: [{task,
  // acc, acc_stderr, n, ...}]}; null when no tasks ran.
  Json tasks_original, tasks_found;
  int64_t steps_run = 0;
  std::string stop_reason;
  std::optional<double> kd_first, kd_last;
  Json layer_specs;          // the found config's jointnas_layer_specs
  int64_t hidden_size = 0, hidden_size_original = 0;
  std::string sample;        // a greedy sample of the found model ("" when none)
  Json selection;            // arch.json's "selection" (winner, margin, candidates, derivation); null: none
  Json budget_use;           // arch.json's {binding, use}
};

// The latency budget on this machine: a fraction of the dense model ("0.6x") is that fraction of
// the original's latency measured in the same run, so that a machine slower or faster than when
// the table was profiled moves the budget with it (CPUs here drift 0.8x-1.4x between runs); an
// absolute budget, or a run without that measurement, is `budget_ms` itself.
double measured_latency_budget(const std::string& budget_text, double budget_ms, std::optional<double> measured_original_ms);

std::string workload_words(const Json& workload);
std::string summary_markdown(const RunSummary& s);
// summary.json: the measured latency (runtime, both models, their ratio, the budget as measured
// and whether the found model meets it), perplexities, the predicted costs.
Json summary_json(const RunSummary& s);
std::string architecture_svg(const Json& layer_specs);

}  // namespace jointnas::report
