// join_inside: the guard for names read from model files.
#include "jointnas/core/paths.h"

#include <fcntl.h>

#include <ftw.h>
#include <sys/stat.h>
#include <cerrno>
#include <cstdio>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"

namespace jointnas {
namespace fs = std::filesystem;

std::string join_inside(const std::string& dir, const std::string& name, const std::string& source) {
  auto reject = [&](const char* why) {
    throw IoError(fmt::format("{}: refusing file name '{}' ({}); names must be plain files inside "
                              "the model directory",
                              source, name, why));
  };
  if (name.empty()) reject("empty");
  if (name.find('\0') != std::string::npos) reject("contains NUL");
  if (name.size() > 4096) reject("too long");
  if (name.find("//") != std::string::npos || name.back() == '/') reject("empty component");
  fs::path p(name);
  if (p.is_absolute() || name.front() == '/') reject("absolute path");
  for (const auto& part : p) {
    if (part == ".." || part == "." || part.empty()) reject("'..', '.' or empty component");
  }
  fs::path joined = fs::path(dir) / p;
  // Resolve symlinks when the target exists: a link inside the directory may not lead out of it.
  // POSIX realpath(3) rather than std::filesystem: in CUDA builds some std::filesystem symbols
  // bind to the copies exported by the GPU machine's libtorch.so (one, remove_all, segfaults on
  // symlinks there), so path checks on untrusted input stay in plain libc.
  char real_dir[PATH_MAX], real_file[PATH_MAX];
  if (::realpath(joined.c_str(), real_file) != nullptr && ::realpath(dir.c_str(), real_dir) != nullptr) {
    const std::string rd(real_dir), rf(real_file);
    if (rf.size() <= rd.size() || rf.compare(0, rd.size(), rd) != 0 || rf[rd.size()] != '/') {
      reject("resolves outside the model directory");
    }
  }
  return joined.string();
}

bool remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) -> int {
    return ::remove(p) == 0 ? 0 : -1;
  };
  return ::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool dir_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (f_ == nullptr) {
    const int err = errno;
    throw IoError(fmt::format("cannot write '{}': {}", tmp_, std::strerror(err)),
                  err == EROFS || err == EACCES || err == EPERM
                      ? "the output directory is read-only: choose another one (--out) or fix its permissions"
                      : "check that the output directory exists and is writable");
  }
}

AtomicFile::~AtomicFile() {
  if (f_ != nullptr) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::fail(int err) {
  if (f_ != nullptr) std::fclose(f_);
  f_ = nullptr;
  std::remove(tmp_.c_str());
  throw IoError(fmt::format("failed writing '{}': {}", path_, std::strerror(err)),
                err == ENOSPC || err == EDQUOT || err == EFBIG
                    ? fmt::format("the disk is full: free space where '{}' lives (the previous file, if any, is "
                                  "intact) and run again",
                                  path_)
                    : "is the directory read-only? The previous file, if any, is intact");
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, f_) != bytes) fail(errno != 0 ? errno : EIO);
}

void AtomicFile::commit() {
  errno = 0;
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) fail(errno != 0 ? errno : EIO);
  std::FILE* f = f_;
  f_ = nullptr;
  if (std::fclose(f) != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno != 0 ? errno : EIO;
    std::remove(tmp_.c_str());
    f_ = nullptr;
    throw IoError(fmt::format("failed writing '{}': {}", path_, std::strerror(err)),
                  "is the disk full or the directory read-only? The previous file, if any, is intact");
  }
  // The rename is durable once the directory is synced (best effort: not every file system can).
  const std::string dir = fs::path(path_).parent_path().string();
  const int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void copy_file_atomic(const std::string& src, const std::string& dst) {
  std::FILE* in = std::fopen(src.c_str(), "rb");
  if (in == nullptr) throw IoError(fmt::format("cannot read '{}': {}", src, std::strerror(errno)));
  AtomicFile out(dst);
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) out.write(buf, n);
  const bool bad = std::ferror(in) != 0;
  std::fclose(in);
  if (bad) throw IoError(fmt::format("error reading '{}'", src));
  out.commit();
}

}  // namespace jointnas
