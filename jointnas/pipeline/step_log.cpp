#include "jointnas/pipeline/step_log.h"

#include <sstream>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"

namespace jointnas::pipeline {

void StepLog::resume_at(int64_t step) {
  std::string kept;
  if (file_exists(path_)) {
    std::istringstream in(read_text_file(path_));
    for (std::string line; std::getline(in, line);) {
      const Json j = Json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() < step) {
        kept += line + "\n";
      }
    }
  }
  write_file_atomic(path_, kept);
  resumed_ = true;
}

void StepLog::write(const Json& record) {
  if (!out_.is_open()) {
    out_.open(path_, resumed_ ? std::ios::app : std::ios::trunc);
    JNAS_CHECK_IO(out_.good(), "cannot write {}", path_);
  }
  out_ << record.dump() << "\n";
  out_.flush();
  JNAS_CHECK_IO(out_.good(), "error writing {} (disk full?)", path_);
}

}  // namespace jointnas::pipeline
