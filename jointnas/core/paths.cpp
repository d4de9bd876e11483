// join_inside: the guard for names read from model files.
#include "jointnas/core/paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
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
                              source, name, why),
                  "copy the file into the model directory (do not link to files outside it), or fix the name");
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
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool dir_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string file_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    struct stat lst {};
    return ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode) ? "a broken symlink" : "nothing";
  }
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  return "not a regular file";
}

void require_regular_file(const std::string& path, const std::string& what) {
  const std::string kind = file_kind(path);
  if (kind == "a regular file") return;
  if (kind == "nothing") {
    throw IoError(fmt::format("{} '{}' does not exist", what, path), "check the path");
  }
  throw IoError(fmt::format("{} '{}' is {}, not a regular file", what, path, kind),
                "pass a regular file (jointnas reads its inputs more than once, so pipes and devices "
                "are refused)");
}

namespace {

// The absolute, symlink-free form of `path`, which need not exist: its longest existing prefix is
// resolved by realpath(3) and the rest appended ("." and ".." folded lexically).
std::string resolved(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  fs::path p = fs::path(path).lexically_normal();
  if (p.is_relative()) p = fs::path(fs::current_path()) / p;
  p = p.lexically_normal();
  fs::path rest;
  for (fs::path head = p;; head = head.parent_path()) {
    char real[PATH_MAX];
    if (::realpath(head.c_str(), real) != nullptr) {
      fs::path r = fs::path(real) / rest;
      std::string out = r.lexically_normal().string();
      while (out.size() > 1 && out.back() == '/') out.pop_back();
      return out;
    }
    if (!head.has_relative_path()) return p.string();
    rest = rest.empty() ? head.filename() : head.filename() / rest;
  }
}

// Whether `inner` is `outer` or lies below it (both resolved).
bool is_within(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  const std::string prefix = outer == "/" ? outer : outer + "/";
  return inner.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

void check_output_separate(const std::string& out, const std::string& out_flag,
                           const std::vector<std::pair<std::string, std::string>>& inputs) {
  if (out.empty()) return;
  const std::string o = resolved(out);
  for (const auto& [in, flag] : inputs) {
    if (in.empty()) continue;
    const std::string i = resolved(in);
    const char* how = nullptr;
    if (o == i) {
      how = "is the same place as";
    } else if (is_within(i, o)) {
      how = "contains";
    } else if (dir_exists(i) && is_within(o, i)) {
      how = "lies inside";
    }
    if (how == nullptr) continue;
    throw ConfigError(fmt::format("the output {} '{}' {} the input {} '{}': writing it would overwrite the input",
                                  out_flag, out, how, flag, in),
                      fmt::format("choose an output ({}) outside every input", out_flag));
  }
}

namespace {

// 12 hex digits from the kernel's random source (getrandom never fails for 6 bytes once the
// pool is initialized; /dev/urandom semantics).
std::string random_suffix() {
  unsigned char b[6] = {};
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    const auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::memcpy(b, &t, sizeof b);
  }
  return fmt::format("{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

// Removes the temporaries "<name>.tmp.<pid>.<hex>" of `path` left by writers that no longer run
// (a kill -9 mid-write), so that killed runs do not fill the disk with half-written copies.
void remove_dead_temporaries(const std::string& path) {
  const fs::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const std::string prefix = p.filename().string() + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos || name.size() - dot - 1 != 12) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (end != name.c_str() + dot || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::unlinkat(::dirfd(d), name.c_str(), 0);
  }
  ::closedir(d);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  remove_dead_temporaries(path_);
  int fd = -1;
  int err = 0;
  // O_EXCL | O_NOFOLLOW: never write through a file or symlink someone planted under the name.
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    tmp_ = fmt::format("{}.tmp.{}.{}", path_, ::getpid(), random_suffix());
    fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    err = errno;
    if (fd < 0 && err != EEXIST) break;
  }
  if (fd >= 0) f_ = ::fdopen(fd, "wb");
  if (f_ == nullptr) {
    if (fd >= 0) {
      err = errno;
      ::close(fd);
      ::unlink(tmp_.c_str());
    }
    throw IoError(fmt::format("cannot write '{}': {}", path_, std::strerror(err)),
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
  // O_NONBLOCK: a FIFO named like a file must not block the open; it is refused just below.
  const int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw IoError(fmt::format("cannot read '{}': {}", src, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    require_regular_file(src, "the file to copy");
  }
  std::FILE* in = ::fdopen(fd, "rb");
  if (in == nullptr) {
    ::close(fd);
    throw IoError(fmt::format("cannot read '{}': {}", src, std::strerror(errno)));
  }
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
