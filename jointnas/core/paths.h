// Safe path handling for untrusted names found inside model files (shard names in an index,
// tokenizer file names): never follow a path out of the model directory.
#pragma once

#include <string>
#include <string_view>

namespace jointnas {

// Joins `dir` and a file name taken from an untrusted file. Throws IoError (naming `source`, the
// file the name came from) unless `name` is a plain relative path that stays inside `dir`:
// no absolute paths, no "..", no empty components, no NUL, and (once resolved) no symlink that
// leads outside `dir`.
std::string join_inside(const std::string& dir, const std::string& name, const std::string& source);

bool file_exists(const std::string& path);

// Deletes `path` and everything below it without following symlinks (nftw, FTW_DEPTH | FTW_PHYS);
// a missing path is not an error. Use this, not std::filesystem::remove_all: in CUDA builds that
// symbol binds to the copy exported by the GPU machine's libtorch.so, which segfaults on existing
// trees (cuda-gdb backtrace in docs/benchmarks.md). Returns false if an entry could not be removed.
bool remove_tree(const std::string& path);
bool dir_exists(const std::string& path);

// Writes `bytes` to `path` atomically: a sibling temporary file, fsync, rename. A reader (or a
// killed writer) sees the old file or the new one, never a torn one. Throws IoError on failure
// (disk full, read-only directory) and removes the temporary.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace jointnas
