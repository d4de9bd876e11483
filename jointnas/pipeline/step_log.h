// The JSON-lines step log of a checkpointed loop (search_log.jsonl, finetune_log.jsonl).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include "jointnas/core/json_util.h"

namespace jointnas::pipeline {

// A fresh run truncates the log at its first record. A resumed run (resume_at, called before the
// first record) keeps the lines of the steps before its checkpoint, rewritten atomically, and
// appends after them, so a kill at any moment loses no line of a checkpointed step.
class StepLog {
 public:
  explicit StepLog(std::string path) : path_(std::move(path)) {}
  void resume_at(int64_t step);
  void write(const Json& record);

 private:
  std::string path_;
  std::ofstream out_;
  bool resumed_ = false;
};

}  // namespace jointnas::pipeline
