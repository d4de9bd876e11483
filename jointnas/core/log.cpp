// stderr logger. Lines are written with one fwrite so that concurrent lines do not interleave.
#include "jointnas/core/log.h"

#include <atomic>
#include <cstdio>

namespace jointnas {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void init_logging(bool verbose) {
  g_level = static_cast<int>(verbose ? LogLevel::kDebug : LogLevel::kInfo);
}

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void log_line(LogLevel level, const std::string& message) {
  std::string line = fmt::format("[jointnas] [{}] {}\n", kNames[static_cast<int>(level)], message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace jointnas
