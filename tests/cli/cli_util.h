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

}  // namespace jointnas::testing::cli
