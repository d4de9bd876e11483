// `jointnas eval tasks`: zero- and few-shot tasks with lm-eval semantics (docs/eval.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct TasksOptions {
  ModelSettings run{{}, "cpu", "", 0, false};
  std::vector<std::string> tasks;
  opt::Path task_dir;  // "": $JNAS_TASK_DIR, else configs/tasks of the checkout
  opt::Path data_dir;  // "": $JNAS_DATA_DIR, else ../shared/data beside the checkout
  opt::Path out;
  int64_t limit = 0;
  int64_t batch = 16;
  int64_t num_fewshot = -1;
  int64_t max_length = 0;
  int64_t bootstrap_iters = 100000;  // lm-eval's default
  bool items = false;
  // Throughput at a model's shapes without its weights (never for accuracy).
  bool random_weights = false;
  opt::Path config, tokenizer;
  int64_t seed = 0;
};
template <class V>
void fields(V& v, TasksOptions& o) {
  fields(v, o.run);
  v(opt::Key{"tasks", "Comma list of task names (<task-dir>/<name>.yaml) or task YAML paths", nullptr, nullptr, true},
    o.tasks);
  v(opt::Key{"task_dir", "Directory of task files (default: $JNAS_TASK_DIR, else configs/tasks of the checkout)"},
    o.task_dir);
  v(opt::Key{"data_dir", "Root of the task data; task paths are relative to it and may not leave it (default: "
                         "$JNAS_DATA_DIR, else ../shared/data beside the checkout)"},
    o.data_dir);
  v(opt::Key{"limit", "First N documents of each task (of each MMLU subject); 0 = all"}, o.limit, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"batch", "Distinct model inputs per forward pass"}, o.batch, opt::in<int64_t>(1, 1 << 16));
  v(opt::Key{"num_fewshot", "Override the task files' num_fewshot (-1 = keep)"}, o.num_fewshot, opt::in<int64_t>(-1, 1000));
  v(opt::Key{"max_length", "Longest input in tokens (0 = the model's positions)"}, o.max_length, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"bootstrap_iters", "Bootstrap samples of the perplexity metrics' standard errors, as lm-eval (0: none)"},
    o.bootstrap_iters, opt::in<int64_t>(0, 100000000));
  v(opt::Key{"out", "Write the results JSON here"}, o.out);
  v(opt::Key{"items", "Include per-item log-likelihoods and decisions in the JSON"}, o.items);
  v(opt::Key{"random_weights", "Random weights at --config's shapes with --tokenizer: throughput only, never accuracy"},
    o.random_weights);
  v(opt::Key{"config", "config.json whose shapes to run (with --random-weights)"}, o.config);
  v(opt::Key{"tokenizer", "Tokenizer directory (with --random-weights)"}, o.tokenizer);
  v(opt::Key{"seed", "Seed of the random weights"}, o.seed, opt::at_least<int64_t>(0));
}

// Evaluates every task (lm-eval task files: multiple_choice, loglikelihood, loglikelihood_rolling;
// docs/eval.md); returns {model, device, limit, batch, data_dir, task_dir, bootstrap_iters,
// results: [...]}, each result with the metrics its task file reports under "metrics".
Json run_tasks(const TasksOptions& o);

}  // namespace jointnas::pipeline
