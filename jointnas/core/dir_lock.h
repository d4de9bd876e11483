// An advisory lock on a working directory (a run or study directory): two processes that would
// write the same stage outputs at once are refused up front, with the holder named, instead of
// racing into misleading missing-file errors.
#pragma once

#include <string>

namespace jointnas {

class DirLock {
 public:
  // Creates `dir` if needed and locks it (flock on `dir`/.jointnas.lock, which records the
  // holder: pid, host, start time and `holder`, e.g. "jointnas run cfg.yaml"). Throws ConfigError
  // naming the directory and the current holder when another process holds it; IoError when the
  // lock file cannot be created. The lock is released by the destructor or when the process
  // exits however it exits (kill -9 included), so it never goes stale.
  static DirLock acquire(const std::string& dir, const std::string& holder);

  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

  const std::string& path() const { return path_; }

 private:
  DirLock() = default;
  std::string path_;
  int fd_ = -1;
};

}  // namespace jointnas
