// Files that appear whole or not at all: every artifact jointnas writes (tables, arch.json,
// checkpoints, exports, reports) goes through here, so a killed process leaves the previous good
// file and a full disk or a read-only directory gives an error that says so.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace jointnas {

// Writes to a temporary beside `path` ("<name>.tmp.<pid>.<12 random hex digits>", created with
// O_CREAT | O_EXCL | O_NOFOLLOW: a name nobody can predict, and never a file or link planted
// there); commit() flushes, fsyncs, closes, renames over `path` and fsyncs the directory.
// Destroyed without commit() (an exception on the way), it removes the temporary and leaves
// `path` untouched. Temporaries of writers that died (kill -9) are removed by the next write of
// the same path. Errors throw IoError naming the file and the system's reason.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void commit();

 private:
  [[noreturn]] void fail(int err);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// Copies `src` to `dst` through an AtomicFile.
void copy_file_atomic(const std::string& src, const std::string& dst);

}  // namespace jointnas
