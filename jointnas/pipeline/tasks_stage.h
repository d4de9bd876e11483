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
  opt::Path task_dir;  // "": configs/tasks of the repository
  opt::Path data_dir;  // "": $SHARED/data/tasks (JNAS_SHARED_DIR, else ../shared beside the repository)
  opt::Path out;
  int64_t limit = 0;
  int64_t batch = 16;
  int64_t num_fewshot = -1;
  int64_t max_length = 0;
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
  v(opt::Key{"task_dir", "Directory of task files (default: configs/tasks of the repository)"}, o.task_dir);
  v(opt::Key{"data_dir", "Root of the task data (task paths are relative to it; default: $SHARED/data/tasks)"}, o.data_dir);
  v(opt::Key{"limit", "First N documents of each task (of each MMLU subject); 0 = all"}, o.limit, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"batch", "Distinct model inputs per forward pass"}, o.batch, opt::in<int64_t>(1, 1 << 16));
  v(opt::Key{"num_fewshot", "Override the task files' num_fewshot (-1 = keep)"}, o.num_fewshot, opt::in<int64_t>(-1, 1000));
  v(opt::Key{"max_length", "Longest input in tokens (0 = the model's positions)"}, o.max_length, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"out", "Write the results JSON here"}, o.out);
  v(opt::Key{"items", "Include per-item log-likelihoods and decisions in the JSON"}, o.items);
  v(opt::Key{"random_weights", "Random weights at --config's shapes with --tokenizer: throughput only, never accuracy"},
    o.random_weights);
  v(opt::Key{"config", "config.json whose shapes to run (with --random-weights)"}, o.config);
  v(opt::Key{"tokenizer", "Tokenizer directory (with --random-weights)"}, o.tokenizer);
  v(opt::Key{"seed", "Seed of the random weights"}, o.seed, opt::at_least<int64_t>(0));
}

// Evaluates every task; returns {model, device, limit, batch, data_dir, results: [...]} (each
// result carries the metrics its task file reports, under "metrics").
Json run_tasks(const TasksOptions& o);

}  // namespace jointnas::pipeline
