// Cores and memory of this machine (Linux: sched_getaffinity, sysconf, cgroup v2 / v1 limits).
#include "jointnas/core/machine.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

namespace jointnas {
namespace {

// The first number in a cgroup file ("max" and absent files: none).
std::optional<uint64_t> read_limit(const char* path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  try {
    return std::stoull(word);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

int machine_cores() {
  static const int cores = [] {
    int n = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    // cgroup v2 CPU quota "max 100000" or "200000 100000" (2 CPUs' worth).
    std::ifstream q("/sys/fs/cgroup/cpu.max");
    std::string quota;
    uint64_t period = 0;
    if (q >> quota >> period && quota != "max" && period > 0) {
      try {
        const uint64_t cpus = (std::stoull(quota) + period - 1) / period;
        if (cpus >= 1) n = std::min<int>(n, static_cast<int>(cpus));
      } catch (const std::exception&) {
      }
    }
    return std::max(n, 1);
  }();
  return cores;
}

uint64_t machine_memory_bytes() {
  static const uint64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    uint64_t b = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                                       : std::numeric_limits<uint64_t>::max();
    for (const char* f : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
      if (auto l = read_limit(f); l && *l > 0) b = std::min(b, *l);
    }
    return b;
  }();
  return bytes;
}

int bounded_thread_count(int64_t requested, const std::string& key) {
  JNAS_CHECK_CONFIG(requested >= 0, "{} must be >= 0 (0: the default), got {}", key, requested);
  const int cores = machine_cores();
  if (requested > cores) {
    JNAS_LOG_WARN("{} {} is more than the {} cores this process may use: using {} (more threads than cores only "
                  "wait for each other)",
                  key, requested, cores, cores);
    return cores;
  }
  return static_cast<int>(requested);
}

void check_memory_fits(uint64_t bytes, const std::string& what, const std::string& keys) {
  const uint64_t have = machine_memory_bytes();
  if (bytes <= have) return;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  const std::string need = bytes == std::numeric_limits<uint64_t>::max()
                               ? std::string("more than 16 EiB")
                               : fmt::format("{:.1f} GiB", static_cast<double>(bytes) / kGiB);
  throw ConfigError(fmt::format("{} needs {}, more than the {:.1f} GiB of memory of this machine", what, need,
                                static_cast<double>(have) / kGiB),
                    fmt::format("lower {}", keys));
}

uint64_t saturating_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return std::numeric_limits<uint64_t>::max();
  return a * b;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max() : a + b;
}

}  // namespace jointnas
