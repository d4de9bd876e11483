// flock(2)-based directory lock: released by the kernel when the holder exits.
#include "jointnas/core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "jointnas/core/error.h"

namespace jointnas {

DirLock DirLock::acquire(const std::string& dir, const std::string& holder) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  JNAS_CHECK_IO(!ec, "cannot create the directory '{}': {}", dir, ec.message());
  DirLock lock;
  lock.path_ = dir + "/.jointnas.lock";
  // O_NOFOLLOW: a planted symlink must not make us truncate another file.
  lock.fd_ = ::open(lock.path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (lock.fd_ < 0) {
    throw IoError(fmt::format("cannot create the lock file '{}': {}", lock.path_, std::strerror(errno)),
                  "check that the directory is writable");
  }
  if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      throw IoError(fmt::format("cannot lock '{}': {}", lock.path_, std::strerror(err)));
    }
    char buf[1024] = {};
    const ssize_t n = ::pread(lock.fd_, buf, sizeof buf - 1, 0);
    std::string who = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another process";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    throw ConfigError(fmt::format("the directory '{}' is in use by {}", dir, who),
                      "wait for that process to finish (the lock goes with it), or use another directory (--out)");
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::time_t now = std::time(nullptr);
  char when[64] = {};
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  const std::string info = fmt::format("pid {} on {} ({}, since {})\n", ::getpid(), host, holder, when);
  if (::ftruncate(lock.fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(lock.fd_, info.data(), info.size(), 0);
  }
  return lock;
}

DirLock::DirLock(DirLock&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace jointnas
