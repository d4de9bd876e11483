// Shared by the libFuzzer targets: what counts as a rejected input, and a scratch directory for
// loaders that only take a path. docs/fuzzing.md describes the targets.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"

namespace jointnas::fuzz {

// Runs `parse`; a jointnas::Error (ConfigError, IoError, ...) or a JSON syntax error is the
// expected outcome for a malformed file: the tool prints it and exits 2 or 3. Any other exception
// (std::out_of_range, nlohmann type_error, c10::Error, std::bad_alloc ...) escapes, and libFuzzer
// reports it as a crash: the parser let a bad input through to code that was not meant to see it.
template <typename Fn>
void expect_accept_or_reject(Fn&& parse) {
  try {
    parse();
  } catch (const jointnas::Error&) {
  } catch (const nlohmann::json::parse_error&) {
  }
}

// Aborts with `what` (libFuzzer saves the input): a property that must hold for every accepted
// input failed, such as a round trip through the writer.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::abort();
}

// One scratch directory per fuzzing process (libFuzzer's -jobs / -fork run several), removed at
// exit. Under $TMPDIR, so a RAM-backed /tmp keeps file-based loaders fast.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/jnas_fuzz_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = tmpl;
  }
  ~ScratchDir() { remove_tree(path_); }
  const std::string& path() const { return path_; }
  // Writes `bytes` to path()/name (replacing it) and returns the full path.
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::string p = path_ + "/" + name;
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() ||
        std::fclose(f) != 0) {
      std::perror(p.c_str());
      std::abort();
    }
    return p;
  }
  void remove(const std::string& name) const { std::remove((path_ + "/" + name).c_str()); }

 private:
  std::string path_;
};

}  // namespace jointnas::fuzz
