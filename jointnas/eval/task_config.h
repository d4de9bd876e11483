// lm-evaluation-harness task YAML, read as lm-eval 0.4 reads it (lm_eval/config/task.py
// TaskConfig, lm_eval/api/task.py ConfigurableTask): output_type multiple_choice, loglikelihood or
// loglikelihood_rolling; doc_to_text / doc_to_target / doc_to_choice as Jinja templates, field
// names, lists or `!function` hooks (the standard tasks' hooks are built in, task_builtins.h);
// include:, few-shot settings, metric_list. Data comes from local files only (docs/eval.md):
// lm-eval's own `dataset_path: json|csv` + `dataset_kwargs.data_files`, or jointnas's
// `local_data` for the layouts of ../shared/data/tasks. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/jinja.h"

namespace jointnas::eval {

enum class OutputType { kMultipleChoice, kLoglikelihood, kLoglikelihoodRolling };
const char* output_type_name(OutputType t);

// One doc_to_* entry (or description, or process_docs) as lm-eval accepts it.
struct DocFn {
  enum Kind { kNone, kTemplate, kValue, kBuiltin } kind = kNone;
  std::string text;                          // kTemplate: the source (may be a field name)
  std::shared_ptr<jinja::Template> tmpl;     // kTemplate, parsed
  Json value;                                // kValue: an int or a list (doc_to_choice: [no, yes])
  std::string builtin;                       // kBuiltin: "module.function" as in the YAML
  std::string where;                         // "file: key", for messages
  bool set() const { return kind != kNone; }
};

// Where one split's documents come from: a reader name (task_data.h) and paths relative to the
// data directory.
struct SplitSource {
  std::string reader;              // jsonl, json, csv, or a layout reader
  std::vector<std::string> paths;  // one or more files (or a directory for directory readers)
  std::string labels;              // optional: one label per line -> field "label" (PIQA)
  std::string where;               // "file: key", for messages
};

struct MetricSpec {
  std::string metric;
  std::string aggregation;  // mean, perplexity, weighted_perplexity, bits_per_byte
  bool higher_is_better = true;
};

struct TaskConfig {
  std::string task;
  std::string source;  // the YAML file (messages name it)
  OutputType output_type = OutputType::kMultipleChoice;
  // Data.
  std::string dataset_path, dataset_name;
  std::map<std::string, SplitSource> splits;  // split name -> source (only those with local data)
  std::string training_split, validation_split, test_split, fewshot_split;
  // Prompts.
  DocFn process_docs, doc_to_text, doc_to_target, doc_to_choice, description;
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  // Few-shot (fewshot_config overrides; unset fields inherit the task's, as lm-eval).
  int64_t num_fewshot = 0;
  std::string fewshot_sampler = "default";  // default (random, seed 1234) or first_n
  DocFn fewshot_doc_to_text, fewshot_doc_to_target, fewshot_doc_to_choice;
  std::string fewshot_target_delimiter, fewshot_fewshot_delimiter;
  // Results.
  std::vector<MetricSpec> metrics;
  std::string process_results;  // a built-in hook, or ""

  // The split lm-eval evaluates: test if given, else validation.
  const std::string& eval_split() const;
  // The few-shot pool: fewshot_split, else training, else validation, else test.
  const std::string& fewshot_pool_split() const;
};

// Reads a task YAML (follows include: inside the file's own directory). Unknown keys, unsupported
// features (generate_until, filters, prompts from promptsource, ...), wrong types and hooks
// without a built-in are ConfigErrors naming the file and the key.
TaskConfig load_task_config(const std::string& path);

// The defaults lm-eval gives a metric (api/registry.py DEFAULT_METRIC_REGISTRY and each metric's
// registered aggregation / higher_is_better).
std::vector<MetricSpec> default_metrics(OutputType t);

}  // namespace jointnas::eval
