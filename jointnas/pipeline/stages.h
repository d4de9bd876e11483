// The stages of `jointnas run` and `jointnas pareto`: each stage is a child process of this same
// binary whose stdout becomes a JSON log (moved into place atomically when the stage succeeds; a
// failed stage's output stays in LOG.part). A finished stage is recorded in a stages.json
// (atomically) and skipped when the command is run again. SIGINT / SIGTERM (to the process or
// its group): the running stages get SIGINT, checkpoint and exit 130; stages that finished are
// recorded; the command throws Interrupted.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::pipeline {

// The JSON at `path`, or null when it is missing or unreadable.
Json read_json_or_null(const std::string& path);

struct StageJob {
  std::string name;               // key in stages.json
  std::vector<std::string> args;  // arguments of `jointnas`
  std::string log;                // where its stdout goes
};

class Stages {
 public:
  // Loads `path` (an object) or starts an empty record.
  Stages(std::string path, const std::atomic<bool>& interrupt);

  Json& json() { return j_; }
  const Json& json() const { return j_; }
  bool done(const std::string& name) const;
  void save() const;

  // Runs `job` unless it is done. A failure throws IoError naming the stage and its log.
  void run(const StageJob& job);
  // Runs the jobs that are not done, at most `parallel` at once, each one's stderr in
  // LOG.stderr.txt. A failed job is recorded ({"failed": true, "exit": rc, "error": its last
  // error line}) and returned by name; the others go on. A rerun retries it.
  std::vector<std::string> run_all(const std::vector<StageJob>& jobs, int parallel);

 private:
  std::pair<int, int> wait_any(const std::vector<int>& pids, bool& forwarded) const;  // (pid, status)

  std::string path_;
  const std::atomic<bool>& interrupt_;
  Json j_;
};

}  // namespace jointnas::pipeline
