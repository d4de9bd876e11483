// Documents -> lm-eval requests, per output type, exactly as lm-eval 0.4.13 builds them
// (api/task.py ConfigurableTask: doc_to_text / doc_to_target / doc_to_choice resolution,
// fewshot_context + build_qa_turn, construct_requests; api/samplers.py for few-shot examples).
// Torch-free: tokenization and scoring are in loglikelihood.h.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/task_config.h"
#include "jointnas/eval/task_data.h"

namespace jointnas::eval {

// lm-eval's marker for a gold label outside the choices (scored as wrong, with a warning).
constexpr int64_t kGoldOutOfRange = -100;

// One document's requests and what its metrics need.
struct Instance {
  std::string where, subtask;
  // multiple_choice: one (context, continuation) per choice; loglikelihood: one pair;
  // loglikelihood_rolling: contexts empty, continuations[0] = the whole text to score.
  std::vector<std::string> contexts, continuations;
  std::vector<std::string> choices;  // multiple_choice: what acc_norm / acc_bytes measure
  std::vector<int64_t> golds;        // one gold index (several with multiple targets)
  Json doc;                          // the document (process_results hooks read it)
};

// Evaluates a doc_to_* entry on a document as lm-eval does: a template naming a feature (a key
// of the evaluated documents) returns that value, other templates render; `role` applies the
// per-key conversions (doc_to_text / doc_to_target: a rendered integer becomes an int when the
// task has doc_to_choice; doc_to_target: "[...]" is parsed as a list; doc_to_choice: the
// rendered text is parsed with ast.literal_eval; description: rendered).
enum class DocRole { kText, kTarget, kChoice, kDescription };
Json apply_doc_fn(const DocFn& f, DocRole role, const Doc& doc, const std::set<std::string>& features,
                  const TaskConfig& cfg);

// Builds every document's requests. `fewshot` is the few-shot pool (same subtask only, as lm-eval
// runs each MMLU subject as its own task); `num_fewshot` overrides the task's when >= 0.
// Processed documents (process_docs) are expected: see process_docs().
std::vector<Instance> build_instances(const TaskConfig& cfg, const std::vector<Doc>& docs,
                                      const std::vector<Doc>& fewshot, int64_t num_fewshot);

// Applies the task's process_docs hook (if any) to every document.
void process_docs(const TaskConfig& cfg, std::vector<Doc>& docs);

// The task's documents and requests from its local data: the eval split (first `limit` documents
// of each subtask when > 0), process_docs, the few-shot pool when `num_fewshot` (>= 0 overrides
// the task's) asks for examples. A split without local data is a ConfigError that says how to
// give it.
std::vector<Instance> load_instances(const TaskConfig& cfg, const std::string& data_dir, int64_t limit = 0,
                                     int64_t num_fewshot = -1);

}  // namespace jointnas::eval
