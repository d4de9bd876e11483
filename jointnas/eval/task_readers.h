// Readers of local task data (the formats under ../shared/data/tasks), one row per format, and
// the regex field derivation of task files. Every reader bounds-checks and names file and line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/eval/tasks.h"

namespace jointnas::eval {

struct ReaderOptions {
  std::string reader;       // a name from known_readers()
  std::string path;         // relative to the data directory (absolute paths are used as given)
  std::string file_suffix;  // csv directories: files ending in it, subtask = name without it
  std::string labels_path;  // optional: one integer label per line -> field "label"
  int64_t limit = 0;        // > 0: first `limit` docs of each subtask
};

bool is_known_reader(const std::string& name);
std::string known_readers();  // "jsonl, json, ..." for messages

// Reads documents. Throws IoError naming the file (and line) for unreadable or malformed data.
std::vector<Doc> read_task_data(const ReaderOptions& o, const std::string& data_dir);

// Checks that `regex` compiles and has at least one named group (ConfigError naming `source`).
void check_derive_regex(const std::string& regex, const std::string& source);
// Matches `regex` (PCRE2, dot matches newline, anchored by the pattern itself) against the
// string field `field` and stores every named group as a field. No match is an IoError.
void apply_derive(Doc& doc, const std::string& field, const std::string& regex);

}  // namespace jointnas::eval
