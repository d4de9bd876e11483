// See file_lock.h.
#include "jointnas/core/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace jointnas {

FileLock::FileLock(const std::string& path) {
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
}

FileLock::~FileLock() {
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
