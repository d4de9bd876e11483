// Per-document results of a task and their aggregation into lm-eval's reported numbers (metric
// value, standard error; per subtask and weight_by_size over subtasks), plus the results JSON.
// Torch-free: the log-likelihoods come from loglikelihood.h (task_eval.h runs the model).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/task_config.h"
#include "jointnas/eval/task_instances.h"
#include "jointnas/eval/task_metrics.h"

namespace jointnas::eval {

struct ItemResult {
  std::string subtask, where;
  std::vector<int64_t> golds;        // multiple_choice
  std::vector<double> lls;           // per request (rolling: one, the sum over windows)
  std::vector<bool> greedy;          // per request (rolling: empty)
  std::vector<int64_t> cont_tokens;  // per request: tokens scored
  ChoiceScore score;                 // multiple_choice
  std::map<std::string, double> x, weight;  // per metric: the document's value (and weight)
};

struct TaskResult {
  std::string task;
  OutputType output_type = OutputType::kMultipleChoice;
  int64_t n = 0;
  std::vector<std::string> metric_order;       // as the task file lists them
  std::map<std::string, MetricValue> metrics;  // the task's numbers
  std::map<std::string, std::pair<int64_t, std::map<std::string, MetricValue>>> subtasks;
  std::vector<ItemResult> items;
  int64_t requests = 0;
  int64_t gold_out_of_range = 0;  // documents whose gold is not among the choices (lm-eval: wrong)
  double seconds = 0;
};

// Fills each item's metric values from its log-likelihoods (lm-eval process_results, or the
// task's process_results hook).
void score_items(const TaskConfig& cfg, const std::vector<Instance>& instances, TaskResult& r);

// Aggregates the items' metric values into r.metrics (and r.subtasks when the documents have
// subtasks: each subtask aggregated alone, the task's `mean` metrics then weighted by size with
// the pooled standard error, as lm-eval's MMLU group; other aggregations run over all documents).
void aggregate(const TaskConfig& cfg, TaskResult& r, int64_t bootstrap_iters);

// {"task", "output_type", "n", "<metric>", "<metric>_stderr", ..., "subtasks": {...},
//  "items": [...] when `items`}.
Json task_result_json(const TaskResult& r, bool items);

}  // namespace jointnas::eval
