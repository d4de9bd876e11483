// join_inside: the guard for names read from model files.
#include "jointnas/core/paths.h"

#include <ftw.h>
#include <sys/stat.h>
#include <cerrno>
#include <cstdio>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>

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

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    throw IoError(fmt::format("cannot write '{}': {}", tmp, std::strerror(errno)),
                  "check that the output directory exists and is writable");
  }
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok &= std::fflush(f) == 0;
  ok &= ::fsync(fileno(f)) == 0;
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw IoError(fmt::format("failed writing '{}': {}", path, std::strerror(err)),
                  "is the disk full or the directory read-only?");
  }
}

}  // namespace jointnas
