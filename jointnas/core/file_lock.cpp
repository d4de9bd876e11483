// See file_lock.h.
#include "jointnas/core/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>

namespace jointnas {
namespace {

// Locks this thread holds, by path: a nested FileLock on the same path (the llama.cpp profile
// times its calibration through the bench stage, which locks too) is held at once, since a second
// open file description of the same file would wait for the first forever. Per thread, so that
// two threads of one process still exclude each other.
std::map<std::string, int>& held_paths() {
  thread_local std::map<std::string, int> m;
  return m;
}

}  // namespace

FileLock::FileLock(const std::string& path) : path_(path) {
  if (auto it = held_paths().find(path); it != held_paths().end()) {
    ++it->second;
    nested_ = true;
    return;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  int rc = 0;
  do {
    rc = ::flock(fd, LOCK_EX);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    ::close(fd);
    return;
  }
  fd_ = fd;
  held_paths()[path] = 1;
}

FileLock::~FileLock() {
  if (!nested_ && fd_ < 0) return;
  auto it = held_paths().find(path_);
  if (it != held_paths().end() && --it->second == 0) held_paths().erase(it);
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

void yield_to_timing() {
  static const int fd = ::open(timing_lock_path().c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    int rc = 0;
    do {
      rc = ::flock(fd, LOCK_SH);  // waits for the timing to end
    } while (rc != 0 && errno == EINTR);
  }
  ::flock(fd, LOCK_UN);
}

std::string timing_lock_path() {
  const char* t = std::getenv("TMPDIR");
  return std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/jointnas-timing.lock";
}

}  // namespace jointnas
