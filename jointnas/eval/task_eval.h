// Runs an lm-eval task end to end: task file -> local documents -> lm-eval requests -> batched
// log-likelihoods (loglikelihood.h) -> lm-eval's metrics with their standard errors -> JSON.
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/eval/loglikelihood.h"
#include "jointnas/eval/task_config.h"
#include "jointnas/eval/task_result.h"

namespace jointnas::eval {

struct TaskEvalOptions {
  std::string data_dir;
  int64_t limit = 0;             // > 0: first N documents (of each subtask)
  int64_t num_fewshot = -1;      // >= 0 overrides the task file
  int64_t bootstrap_iters = 100000;  // lm-eval's default; 0 = no standard errors
  int64_t prefix_token = -1;     // lm-eval's prefix_token_id (BOS, else EOS); < 0: `bos`
  ScoreOptions score;
};

// `bos` >= 0 when the tokenizer adds BOS (HF add_special_tokens), as lm-eval's tok_encode.
TaskResult evaluate_task(const model::LlamaModel& model, const tok::Tokenizer& tok, int64_t bos,
                         const TaskConfig& cfg, const TaskEvalOptions& opts);

// The task's documents and lm-eval requests without a model: what evaluate_task scores.
inline std::vector<Instance> load_instances(const TaskConfig& cfg, const TaskEvalOptions& opts) {
  return load_instances(cfg, opts.data_dir, opts.limit, opts.num_fewshot);
}

}  // namespace jointnas::eval
