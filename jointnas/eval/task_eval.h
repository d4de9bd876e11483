// Runs a multiple-choice task end to end: task file -> documents -> lm-eval requests -> batched
// log-likelihoods -> acc / acc_norm / acc_bytes with lm-eval's standard errors -> JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/loglikelihood.h"
#include "jointnas/eval/tasks.h"

namespace jointnas::eval {

struct ItemResult {
  std::string subtask;
  std::string where;
  int64_t gold = 0;
  std::vector<double> lls;              // per choice
  std::vector<bool> greedy;             // per choice
  std::vector<int64_t> cont_tokens;     // per choice: continuation length in tokens
  ItemScore score;
};

struct TaskResult {
  std::string task;
  int64_t n = 0;
  std::map<std::string, MetricValue> metrics;  // acc, acc_norm, acc_bytes
  // Per subtask (MMLU subjects): n and metrics; the task's metrics are then lm-eval's
  // weight_by_size aggregate (size-weighted mean, pooled standard error).
  std::map<std::string, std::pair<int64_t, std::map<std::string, MetricValue>>> subtasks;
  std::vector<ItemResult> items;
  int64_t requests = 0;
  double seconds = 0;
};

struct TaskEvalOptions {
  std::string data_dir;
  int64_t limit = 0;        // > 0: first N documents (of each subtask)
  int64_t num_fewshot = -1; // >= 0 overrides the task file
  ScoreOptions score;
};

TaskResult evaluate_task(const model::LlamaModel& model, const tok::Tokenizer& tok, int64_t bos,
                         TaskConfig cfg, const TaskEvalOptions& opts);

// Aggregates item scores into metrics (exposed for tests).
void aggregate(TaskResult& r);

// {"task", "n", "acc", "acc_stderr", ..., "subtasks": {...}, "items": [...] when `items`}.
Json task_result_json(const TaskResult& r, bool items);

}  // namespace jointnas::eval
