// Local task data, read into documents in the schema of lm-eval's Hugging Face datasets. One
// reader per file layout (a table): the formats `datasets.load_dataset("json" | "csv")` reads,
// and the layouts of ../shared/data/tasks, each turned into its dataset's HF schema so that
// lm-eval's task YAML runs on it unchanged. Task data and task files are untrusted: every path
// stays inside the data directory (no "..", no absolute paths, no symlink out), sizes are
// bounded, and every error names the file and line. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/task_config.h"

namespace jointnas::eval {

struct Doc {
  Json fields;          // a JSON object: the document as lm-eval's templates see it
  std::string where;    // "file:line" (or "file: item N"), for messages
  std::string subtask;  // "" unless the source is one file per subtask (MMLU subjects)
};

// Readers (SplitSource::reader):
//   json              JSON Lines, or one JSON array of objects (what load_dataset("json") accepts)
//   jsonl             JSON Lines
//   csv               header row; columns typed as pandas infers them (all-int -> int, all-number
//                     -> float, else str; empty cells None), what load_dataset("csv") gives
//   llm_foundry_boolq llm-foundry boolq.jsonl -> super_glue/boolq {passage, question, label}
//   llm_foundry_winogrande  -> winogrande {sentence, option1, option2, answer "1"/"2"}
//   hellaswag_txt     llama.cpp's HellaSwag text -> {activity_label, ctx_a, ctx_b, ctx, endings, label}
//   llm_adapters_arc  LLM-Adapters ARC json -> ai2_arc {question, choices {text, label}, answerKey}
//   mmlu_csv_dir      a directory of <subject>_<split>.csv -> cais/mmlu {question, subject,
//                     choices, answer}, subtask = subject
//   wikitext_raw      wiki.*.raw -> wikitext_document_level {page} (one document per article)
bool is_known_reader(const std::string& name);
std::string known_readers();

// Reads one split. `limit` > 0 keeps the first `limit` documents (of each subtask).
std::vector<Doc> read_split(const SplitSource& src, const std::string& data_dir, int64_t limit = 0);

// Reads one data file with a named reader (the fuzz target's entry point; `path` is used as is).
std::vector<Doc> read_data_file(const std::string& reader, const std::string& path);

// `name` (a path read from a task file) joined to `dir`, refused unless it stays inside: no
// absolute path, no "..", "." or empty component, no symlink that resolves outside `dir`. The
// IoError names `source` (the task file and key) and `what` ("task data", "include").
std::string resolve_inside(const std::string& dir, const std::string& name, const std::string& source,
                           const char* what);

// The project (repository) root: the nearest directory above `start` (the running binary, or the
// current directory) that holds configs/tasks; "" when there is none.
std::string find_project_root(const std::string& start);
// Defaults when --data-dir / --task-dir are not given: $JNAS_DATA_DIR, else
// <project>/../shared/data; $JNAS_TASK_DIR, else <project>/configs/tasks. `exe` is the
// running binary (/proc/self/exe); the current directory is tried after it.
std::string default_data_dir(const std::string& exe);
std::string default_task_dir(const std::string& exe);

}  // namespace jointnas::eval
