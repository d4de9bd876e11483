// Run configs of `jointnas run` (configs/runs/*.yaml): the YAML document read into JSON, plus
// typed accessors whose errors name the file and the key. Parsing takes the text, apart from
// reading the file, so that it is fuzzed directly (fuzz/fuzz_run_config.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::cli {

struct RunConfig {
  std::string source, dir;  // the config file and its folder (relative paths start there)
  Json j;

  // `o[key]` as a string, `dflt` when absent; ConfigError when it is not a string.
  std::string str(const Json& o, const char* key, const std::string& dflt) const;
  // `o[key]` as the text of a number (it becomes a flag of a stage), `dflt` when absent.
  std::string num(const Json& o, const char* key, const std::string& dflt) const;
  // `o[key]` as an integer in [lo, hi] (written as a number or a string), `dflt` when absent;
  // ConfigError naming the key otherwise.
  int64_t integer(const Json& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) const;
  // A path of the config: "$SHARED/..." is the shared data folder (JNAS_SHARED_DIR, else
  // ../shared beside the repository); others are relative to the config file.
  std::string path(const std::string& p) const;
  // The mapping `j[key]` (an empty one when absent); ConfigError when it is not a mapping.
  const Json& section(const char* key) const;
};

// The optional `search:` knobs a config may set (entropy_weight, penalty, mixing, ...) as the
// `jointnas search` flags they stand for, in a fixed order; absent knobs give no flag.
std::vector<std::string> search_knob_flags(const Json& search);

// Parses the YAML `text` of the run config file `path` (named in errors; relative paths of the
// config start at its folder). Throws ConfigError for invalid YAML, a document that is not a
// mapping, or one without `model`, `search_space` and `budget` (`pareto` for `jointnas pareto`).
RunConfig parse_run_config(const std::string& text, const std::string& path);
// Reads and parses `path` (IoError when it cannot be read).
RunConfig load_run_config(const std::string& path);

}  // namespace jointnas::cli
