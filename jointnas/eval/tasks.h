// Zero- and few-shot multiple-choice tasks with lm-evaluation-harness semantics (docs/eval.md):
// a small YAML file per task (configs/tasks/) names a reader for the local data, prompt templates
// and the gold field; this file turns documents into lm-eval's (context, continuation) requests
// and their results into acc / acc_norm / acc_bytes. Torch-free: scoring is in loglikelihood.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace jointnas::eval {

// One field of a document: a string (numbers are kept as their decimal text) or a list of them.
using DocValue = std::variant<std::string, std::vector<std::string>>;

struct Doc {
  std::map<std::string, DocValue> fields;
  std::string where;  // "file:line" (or "file:item N"), for error messages
};

// A task file. Templates are text with `{field}` or `{field|filter|...}` substitutions
// (`{{` / `}}` are literal braces); filters: strip, capitalize (Python's str.capitalize),
// underscores_to_spaces, hellaswag (lm-eval's hellaswag preprocess). Keys: docs/eval.md.
struct TaskConfig {
  std::string task;
  std::string source;  // the YAML file, for messages
  // Data: reader name (jsonl, json, csv, hellaswag_txt, llm_adapters_mc) and a path relative to
  // the data directory. For csv, a directory is read as one subtask per file ending in
  // `file_suffix` (the subtask name is the file name without it; MMLU's subjects).
  std::string reader;
  std::string path;
  std::string file_suffix;
  std::string labels_path;  // optional: one gold per line, becomes the field `label` (PIQA)
  // Derived fields: PCRE2 regex with named groups applied to a field (must match).
  struct Derive {
    std::string field;
    std::string regex;
  };
  std::vector<Derive> derive;
  // Prompt.
  std::string description;        // template rendered per doc, before the few-shot examples
  std::string text;               // the context template (unless contexts_field is set)
  std::vector<std::string> choices;  // one template per choice, or
  std::string choices_field;         // a list field holding the choices
  std::string contexts_field;     // multiple input (WinoGrande): one context per choice ...
  std::string continuation;       // ... and one shared continuation template
  std::string text_filter;        // filter applied to the rendered context
  std::string choice_filter;      // filter applied to each rendered choice
  std::string gold_field;         // integer index of the right choice
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  // Few-shot: the first `num_fewshot` documents of the same subtask from `fewshot_path`
  // (lm-eval's first_n sampler on a separate split).
  int64_t num_fewshot = 0;
  std::string fewshot_path;
  std::string fewshot_file_suffix;
  std::vector<std::string> metrics = {"acc", "acc_norm"};  // reported in the table
};

// Reads and validates a task YAML (unknown keys, missing keys and wrong types are ConfigErrors
// naming the file and line).
TaskConfig load_task_config(const std::string& path);

// Reads the task's documents (subtask in field "subtask" for directory sources) from `data_dir`,
// `limit` > 0 keeps the first `limit` documents of each subtask (lm-eval's --limit).
std::vector<Doc> read_docs(const TaskConfig& cfg, const std::string& data_dir, int64_t limit = 0);
// Reads the few-shot pool (empty when num_fewshot == 0).
std::vector<Doc> read_fewshot_docs(const TaskConfig& cfg, const std::string& data_dir);

// One multiple-choice item as lm-eval builds its requests.
struct McItem {
  std::string subtask;                     // "" unless the task has subtasks
  std::vector<std::string> contexts;       // one per choice (identical unless multiple input)
  std::vector<std::string> continuations;  // one per choice, target delimiter included
  std::vector<std::string> choices;        // lm-eval's doc_to_choice: what acc_norm measures
  int64_t gold = 0;
  std::string where;
};

// Renders `doc` into an item (few-shot examples of the same subtask taken from `fewshot`).
McItem make_item(const TaskConfig& cfg, const Doc& doc, const std::vector<Doc>& fewshot);
std::vector<McItem> make_items(const TaskConfig& cfg, const std::vector<Doc>& docs,
                               const std::vector<Doc>& fewshot);

// Template rendering (exposed for tests).
std::string render_template(const std::string& tmpl, const Doc& doc, const std::string& source);
std::string apply_filter(const std::string& name, const std::string& s);

// Decision and scores of one item from its per-choice log-likelihoods (lm-eval process_results:
// argmax of ll, of ll / len(choice) in Unicode code points, of ll / len in UTF-8 bytes; the first
// maximum wins ties, as numpy.argmax).
struct ItemScore {
  int64_t pred = 0, pred_norm = 0, pred_bytes = 0;
  double acc = 0, acc_norm = 0, acc_bytes = 0;
};
ItemScore score_item(const McItem& item, const std::vector<double>& lls);

// Mean and standard error of a 0/1 metric (lm-eval mean_stderr: sample stddev / sqrt(n)).
struct MetricValue {
  double mean = 0;
  double stderr_ = 0;  // NaN for n < 2
};
MetricValue mean_stderr(const std::vector<double>& xs);
// lm-eval's group aggregate with weight_by_size (MMLU): size-weighted mean and pooled stderr.
MetricValue pooled(const std::vector<MetricValue>& parts, const std::vector<int64_t>& sizes);

// Number of Unicode code points of UTF-8 text (Python's len(str)).
int64_t utf8_length(const std::string& s);

}  // namespace jointnas::eval
