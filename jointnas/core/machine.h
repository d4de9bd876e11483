// What this machine has (cores, memory), and the checks that keep a value from a flag or a file
// from asking for more: threads are capped by the cores, an allocation larger than the memory
// is refused before it is made.
#pragma once

#include <cstdint>
#include <string>

namespace jointnas {

// CPUs this process may run on (sched_getaffinity; the cgroup's CPU quota when it is lower).
int machine_cores();
// Physical memory of the machine, or the cgroup's memory limit when that is lower, in bytes.
uint64_t machine_memory_bytes();

// A thread count from a flag or config `key`: 0 stays 0 (the library's default), a negative one is
// a ConfigError, and one above machine_cores() is capped to it with a warning (1000 threads on 2
// cores turned a 0.4 s job into 23 s).
int bounded_thread_count(int64_t requested, const std::string& key);

// Throws ConfigError when `bytes` (what `what` needs, e.g. "the KV cache of 64 x 16777216
// positions") exceed machine_memory_bytes(): "needs X GiB, more than the Y GiB of this machine",
// with a hint naming `keys`, the flags or config keys that set the size. Call it before
// allocating. An estimate that overflows should pass UINT64_MAX.
void check_memory_fits(uint64_t bytes, const std::string& what, const std::string& keys);

// a * b (* c ...) in bytes, saturating at UINT64_MAX instead of wrapping (sizes from files).
uint64_t saturating_mul(uint64_t a, uint64_t b);
uint64_t saturating_add(uint64_t a, uint64_t b);

}  // namespace jointnas
