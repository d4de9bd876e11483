// Safe path handling for untrusted names found inside model files (shard names in an index,
// tokenizer file names): never follow a path out of the model directory.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jointnas {

// Joins `dir` and a file name taken from an untrusted file. Throws IoError (naming `source`, the
// file the name came from) unless `name` is a plain relative path that stays inside `dir`:
// no absolute paths, no "..", no empty components, no NUL, and (once resolved) no symlink that
// leads outside `dir`.
std::string join_inside(const std::string& dir, const std::string& name, const std::string& source);

// Whether `path` is a regular file (symlinks followed). False for FIFOs, devices, directories:
// say which with require_regular_file, not "does not exist".
bool file_exists(const std::string& path);
// Whether anything is at `path` (symlinks followed).
bool path_exists(const std::string& path);
// What is at `path`, for messages: "a regular file", "a directory", "a FIFO (named pipe)", "a
// socket", "a character device", "a block device", "a broken symlink", "nothing".
std::string file_kind(const std::string& path);
// Throws IoError naming `path` (and `what`, e.g. "config.json of the model") unless it is a
// regular file: "does not exist", or what it is instead.
void require_regular_file(const std::string& path, const std::string& what);

// An output must never overwrite an input. Throws ConfigError (naming both flags or keys and
// paths, with the fix) when the output path `out` (a file or a directory, existing or not) is an
// input, contains one, or lies inside an input directory. Paths are compared after resolving
// symlinks and "..", so two spellings of one place are one place. `inputs` pairs a path with the
// flag or key it came from; empty paths are skipped.
void check_output_separate(const std::string& out, const std::string& out_flag,
                           const std::vector<std::pair<std::string, std::string>>& inputs);

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
