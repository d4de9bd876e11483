// Run config parsing of `jointnas run` (tools/jointnas/run_config.h): every malformed config is a
// ConfigError naming the file. The cases below were found by fuzz/fuzz_run_config or, for the
// alias ones, by reading the converter (docs/fuzzing.md).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "tools/jointnas/run_config.h"

namespace jointnas::cli {
namespace {

const std::string kHead = "model: m\nsearch_space: s.yaml\nbudget: {latency: 0.6x}\n";

RunConfig parse(const std::string& text) { return parse_run_config(text, "configs/runs/t.yaml"); }

void expect_config_error(const std::string& text, const std::string& what) {
  try {
    parse(text);
    FAIL() << "no throw for:\n" << text;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("configs/runs/t.yaml"), std::string::npos) << e.what();
  }
}

TEST(RunConfig, ParsesShippedShape) {
  const RunConfig rc = parse(kHead + "threads: 2\nworkload: {kind: decode, batch: 1}\nrun_dir: ../../runs/x\n");
  EXPECT_EQ(rc.dir, "configs/runs");
  EXPECT_EQ(rc.str(rc.j, "model", ""), "m");
  EXPECT_EQ(rc.num(rc.j, "threads", "1"), "2");
  EXPECT_EQ(rc.num(rc.section("workload"), "batch", "4"), "1");
  EXPECT_EQ(rc.path(rc.str(rc.j, "run_dir", "")), "runs/x");
  EXPECT_EQ(rc.integer(rc.j, "closed_loop", 2, 0, 1000), 2);  // absent: the default
  expect_config_error("model: m\n", "needs 'model', 'search_space' and 'budget'");
  expect_config_error("[1, 2]", "is a mapping");
}

// Found by fuzz/fuzz_run_config: `closed_loop: !` reached std::stoi, whose std::invalid_argument
// (std::out_of_range for 1e30) escaped as "error: stoi" with exit 1. Now a ConfigError.
TEST(RunConfig, ClosedLoopMustBeASmallInteger) {
  const RunConfig three = parse(kHead + "closed_loop: 3\n");
  EXPECT_EQ(three.integer(three.j, "closed_loop", 2, 0, 1000), 3);
  const RunConfig quoted = parse(kHead + "closed_loop: '0'\n");
  EXPECT_EQ(quoted.integer(quoted.j, "closed_loop", 2, 0, 1000), 0);
  for (const char* bad : {"!", "abc", "2.5", "1e30", "-1", "3x", "[1]", "99999999999999999999999"}) {
    const RunConfig rc = parse(kHead + "closed_loop: " + bad + "\n");
    EXPECT_THROW(rc.integer(rc.j, "closed_loop", 2, 0, 1000), ConfigError) << bad;
  }
}

// Found by fuzz/fuzz_run_config: YAML strings are bytes, JSON strings must be UTF-8; a config with
// a stray 0xFF byte threw nlohmann's type_error 316 when run() wrote stages.json (or an error
// message dumped the value). Now refused up front.
TEST(RunConfig, InvalidUtf8IsAConfigError) {
  expect_config_error(kHead + "closed_loop: 0\xff\xfe\n", "is not UTF-8");
  EXPECT_NO_THROW(parse(kHead + "data: {train: \"h\xc3\xa9llo.txt\"}\n"));
}

// An alias inside its own anchor makes yaml-cpp's node graph cyclic: converting it to JSON recursed
// until the stack overflowed (ASan stack-overflow). Nested aliases expand exponentially: 425 bytes
// of YAML became 10^8 JSON values (a hang, then out of memory).
TEST(RunConfig, SelfReferentialAndExponentialAliasesAreErrors) {
  expect_config_error(kHead + "search: &s {steps: [*s]}\n", "nests deeper than 64 levels");
  std::string laughs = kHead + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    const std::string name = fmt::format("a{}", i);
    laughs += name;
    laughs += ": &";
    laughs += name;
    laughs += " [";
    for (int k = 0; k < 10; ++k) {
      laughs += k ? ", *a" : "*a";
      laughs += std::to_string(i - 1);
    }
    laughs += "]\n";
  }
  expect_config_error(laughs, "more than 100000 values once aliases are expanded");
  // Aliases themselves are fine (configs/runs use none, but YAML allows them).
  const RunConfig rc = parse(kHead + "search: &s {steps: 5}\nfinetune: *s\n");
  EXPECT_EQ(rc.num(rc.section("finetune"), "steps", "1"), "5");
}

}  // namespace
}  // namespace jointnas::cli
