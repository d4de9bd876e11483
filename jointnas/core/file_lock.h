// An exclusive advisory lock (flock) on a file, held for the object's lifetime: how processes of
// one machine take turns at something they must not do at once, such as timing a model while
// another process times one (docs/search.md "Measured fit").
#pragma once

#include <string>

namespace jointnas {

class FileLock {
 public:
  // Blocks until the lock on `path` is held. The file is created (mode 0600) when missing and is
  // never followed through a symlink; when it cannot be opened or locked, the object holds
  // nothing and held() says so (the caller goes on unlocked, with a warning). Re-entrant within
  // a thread: while this thread holds `path`, another FileLock on it is held at once.
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0 || nested_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool nested_ = false;
};

// The machine-wide lock file of latency timings: $TMPDIR (else /tmp)/jointnas-timing.lock.
std::string timing_lock_path();

// Returns at once unless another process holds the timing lock (it is timing a model); then
// blocks until it is released. Training and evaluation loops call it between steps, so that the
// stages of a study running side by side go quiet while one of them times (a measured fit beside
// a training search measured one architecture 0.79x of the original that the study, timing on a
// quiet machine, measured 0.65x). Two system calls when nobody times.
void yield_to_timing();

}  // namespace jointnas
