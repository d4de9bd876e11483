// Logging to stderr (results go to stdout): one grep-able line per message,
// "[jointnas] [info] ...". Deliberately tiny: fmt is all it needs.
#pragma once

#include <fmt/format.h>

namespace jointnas {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the threshold once at start-up (`verbose` enables debug lines).
void init_logging(bool verbose = false);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, const std::string& message);

}  // namespace jointnas

#define JNAS_LOG_AT(level, ...)                                                    \
  do {                                                                             \
    if (::jointnas::log_enabled(level)) ::jointnas::log_line(level, ::fmt::format(__VA_ARGS__)); \
  } while (0)
#define JNAS_LOG_DEBUG(...) JNAS_LOG_AT(::jointnas::LogLevel::kDebug, __VA_ARGS__)
#define JNAS_LOG_INFO(...) JNAS_LOG_AT(::jointnas::LogLevel::kInfo, __VA_ARGS__)
#define JNAS_LOG_WARN(...) JNAS_LOG_AT(::jointnas::LogLevel::kWarn, __VA_ARGS__)
