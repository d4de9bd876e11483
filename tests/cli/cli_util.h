// Helpers of the CLI tests: run the built binary, scratch directories, error-line checks.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "jointnas/core/paths.h"
#include "tensor_assert.h"

namespace jointnas::testing::cli {
namespace fs = std::filesystem;

struct CmdResult {
  int code = -1;
  std::string out, err;
};

inline CmdResult run(const std::string& args) {
  // One stderr file per test process: ctest runs test processes side by side.
  const fs::path errf = fs::temp_directory_path() / ("jnas_cli_err_" + std::to_string(getpid()) + ".txt");
  std::string cmd = std::string(JNAS_BIN) + " " + args + " 2>" + errf.string();
  CmdResult r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(errf);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

inline fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_cli_" + name);
  jointnas::remove_tree(fs::path(d).string());
  fs::create_directories(d);
  return d;
}

inline void expect_error(const CmdResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;  // the first line is the error
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Exception raised from"), std::string::npos) << "backtrace leaked: " << r.err;
}

// The whole file, bytes as they are ("" when missing).
inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A tiny `jointnas run` on the bundled stories260K (decode at context 64, 0.7x latency budget, no
// closed loop since measured numbers differ between runs): writes ROOT/NAME.yaml with run
// directory ROOT/NAME and returns its path. `table_line` is "table: PATH\n" or ""; `data` the
// inside of `data: {...}`; `stages` the search, finetune and eval lines.
inline std::string write_tiny_run_config(const fs::path& root, const std::string& name, const std::string& table_line,
                                         const std::string& data, const std::string& stages) {
  const fs::path p = root / (name + ".yaml");
  std::ofstream(p) << "model: " << repo_path("models/stories260K/stories260K.bin") << "\n"
                   << "search_space: " << repo_path("configs/spaces/stories260k.yaml") << "\n"
                   << "run_dir: " << (root / name).string() << "\n"
                   << table_line << "data: {" << data << "}\n"
                   << "workload: {kind: decode, batch: 1, context: 64}\n"
                   << "budget: {latency: 0.7x}\nclosed_loop: 0\n"
                   << "importance: {windows: 4, seq_len: 64}\n"
                   << "profile: {repeats: 3}\n"
                   << stages;
  return p.string();
}

}  // namespace jointnas::testing::cli
