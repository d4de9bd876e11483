// Error types of jointnas. The library never exits: it throws one of these and only main()
// catches, printing one `error:` line (and a `hint:` line when a remedy is known).
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace jointnas {

// Messages and hints quote values from files and flags; a hostile 100 MB value must not become a
// 100 MB error line. Longer text keeps its first and last parts (where the file, the key and what
// is wrong are written) around a "[... N bytes omitted ...]" marker.
constexpr size_t kMaxErrorMessageBytes = 2048;
std::string bound_message(std::string text);

// Base of every user-facing error. exit_code() follows the CLI contract:
// 1 other failure, 2 usage/config, 3 I/O or model format.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::string hint = {})
      : std::runtime_error(bound_message(message)), hint_(bound_message(std::move(hint))) {}
  const std::string& hint() const { return hint_; }
  virtual int exit_code() const { return 1; }

 private:
  std::string hint_;
};

// Bad flags, run configs or option values (exit 2).
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// Missing, unreadable, truncated or malformed files: checkpoints, config.json, tokenizers,
// text (exit 3).
class IoError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

// SIGINT / SIGTERM: the work was checkpointed and the run stops (exit 130, as a shell reports
// a process killed by SIGINT); running the same command again resumes.
class Interrupted : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 130; }
};

}  // namespace jointnas

// JNAS_CHECK_IO(cond, "fmt {}", args...) throws IoError with the formatted message.
#define JNAS_CHECK_IO(cond, ...) \
  do {                           \
    if (!(cond)) throw ::jointnas::IoError(::fmt::format(__VA_ARGS__)); \
  } while (0)

#define JNAS_CHECK_CONFIG(cond, ...) \
  do {                               \
    if (!(cond)) throw ::jointnas::ConfigError(::fmt::format(__VA_ARGS__)); \
  } while (0)
