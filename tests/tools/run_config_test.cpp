// The typed run config (pipeline/run_config.h): every section read with its type and range
// checked, unknown keys refused, values that look like flags refused, all before any stage runs.
// The YAML cases below were found by fuzz/fuzz_run_config (docs/fuzzing.md).
#include <cstdint>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/pipeline/run_config.h"

namespace jointnas::pipeline {
namespace {

const std::string kHead = "model: m\nsearch_space: s.yaml\nbudget: {latency: 0.6x}\n";

RunConfig parse(const std::string& text) { return parse_run_config(text, "configs/runs/t.yaml"); }

// A ConfigError whose message names the file and contains `what`.
void expect_config_error(const std::string& text, const std::string& what) {
  try {
    parse(text);
    FAIL() << "no throw for:\n" << text;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("configs/runs/t.yaml"), std::string::npos) << e.what();
  }
}

TEST(RunConfig, ParsesTheShippedShapeWithTypedValues) {
  const RunConfig rc = parse(kHead + "threads: 2\nworkload: {kind: prefill, batch: 3, tokens: 64}\nrun_dir: ../../runs/x\n"
                                     "search: {steps: 80, batch: 4, lr_arch: 0.1, relaxation: hard}\n");
  EXPECT_EQ(rc.dir, "configs/runs");
  EXPECT_EQ(rc.model.str(), "configs/runs/m");  // relative to the config's folder
  EXPECT_EQ(rc.run_dir.str(), "runs/x");
  EXPECT_EQ(rc.threads, 2);
  EXPECT_EQ(rc.workload.kind, "prefill");
  EXPECT_EQ(rc.workload.batch, 3);
  EXPECT_EQ(rc.workload.tokens, 64);
  EXPECT_EQ(rc.search.dnas.steps, 80);
  EXPECT_DOUBLE_EQ(rc.search.dnas.lr_arch, 0.1);
  EXPECT_EQ(rc.search.dnas.relaxation, search::Relaxation::kHard);
  EXPECT_EQ(rc.budget.latency, "0.6x");
  EXPECT_EQ(rc.closed_loop, 2);  // absent: the default
  expect_config_error("[1, 2]", "is a mapping");
}

TEST(RunConfig, UnknownKeysAreErrorsNamingTheKey) {
  expect_config_error(kHead + "serach: {steps: 3}\n", "unknown key 'serach'");
  expect_config_error(kHead + "search: {stpes: 3}\n", "unknown key 'search.stpes'");
  expect_config_error(kHead + "workload: {kind: decode, contxt: 5}\n", "unknown key 'workload.contxt'");
}

// A value that looks like a flag (`steps: "--out=x"`) is a type error before any stage: it used to
// become the child's `--steps --out=x`.
TEST(RunConfig, ValuesThatLookLikeFlagsAreTypeErrors) {
  expect_config_error(kHead + "search: {steps: \"--out=x\"}\n", "'search.steps' must be an integer");
  expect_config_error(kHead + "search: {penalty_form: \"--out=x\"}\n", "'search.penalty_form' must be one of");
  expect_config_error(kHead + "data: {calibration: \"--out=x\"}\n", "looks like a command-line flag");
  expect_config_error(kHead + "eval: {tasks: [piqa, \"--limit=1\"]}\n", "looks like a command-line flag");
}

TEST(RunConfig, RangesAndTypesAreCheckedWhenRead) {
  expect_config_error(kHead + "workload: {context: -5}\n", "'workload.context' must be an integer in [0,");
  expect_config_error(kHead + "workload: {kind: train}\n", "'workload.kind' must be one of decode, prefill");
  expect_config_error("model: m\nsearch_space: s.yaml\nbudget: {memory_mib: -5}\n",
                      "'budget.memory_mib' must be a finite number in [0,");
  expect_config_error(kHead + "budget: {params: 5}\n", "the key 'budget' appears twice in one mapping");
  expect_config_error(kHead + "search: {lr_arch: .nan}\n", "'search.lr_arch' must be a finite number");
  expect_config_error(kHead + "threads: 1.5\n", "'threads' must be an integer");
  expect_config_error(kHead + "search: {relaxation: softmaxx}\n", "'search.relaxation' must be one of gumbel, hard, softmax");
  expect_config_error(kHead + "pareto: {keep_models: maybe}\n", "'pareto.keep_models' must be true or false");
  expect_config_error(kHead + "search: 5\n", "search");
}

// Found by fuzz/fuzz_run_config: `closed_loop: !` reached std::stoi (exit 1). A typed integer now.
TEST(RunConfig, ClosedLoopMustBeASmallInteger) {
  EXPECT_EQ(parse(kHead + "closed_loop: 3\n").closed_loop, 3);
  for (const char* bad : {"!", "abc", "2.5", "1e30", "-1", "3x", "[1]", "99999999999999999999999"}) {
    EXPECT_THROW(parse(kHead + "closed_loop: " + bad + "\n"), ConfigError) << bad;
  }
}

// A 100 MB value must not make a 100 MB error line.
TEST(RunConfig, ErrorMessagesQuoteLongValuesShortly) {
  const std::string huge(200000, 'a');
  try {
    parse(kHead + "workload: {kind: " + huge + "}\n");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u) << std::string(e.what()).substr(0, 400);
  }
}

// Found by fuzz/fuzz_run_config: YAML strings are bytes, JSON strings must be UTF-8.
TEST(RunConfig, InvalidUtf8IsAConfigError) {
  expect_config_error(kHead + "closed_loop: 0\xff\xfe\n", "is not UTF-8");
  EXPECT_NO_THROW(parse(kHead + "data: {calibration: c.txt, train: \"h\xc3\xa9llo.txt\"}\n"));
}

// Found by fuzz/fuzz_run_config: a document whose first bytes hold a NUL is UTF-32 to yaml-cpp;
// every byte of this one is valid UTF-8, yet U+110000 decoded from it is not, and dumping the
// config threw a JSON type_error (exit 1).
TEST(RunConfig, Utf16And32DocumentsAreConfigErrors) {
  std::string text;
  auto put32 = [&](uint32_t cp) {
    for (int sh = 24; sh >= 0; sh -= 8) text.push_back(static_cast<char>((cp >> sh) & 0xff));
  };
  for (char c : std::string("model: m")) put32(static_cast<unsigned char>(c));
  put32(0x110000);
  for (char c : std::string("\nsearch_space: s\n")) put32(static_cast<unsigned char>(c));
  expect_config_error(text, "is a NUL: not UTF-8 text");
  expect_config_error(kHead + std::string("x: \"a\0b\"\n", 9), "is a NUL");
}

// A number that is not finite is no string value either (it dumped as "null").
TEST(RunConfig, NonFiniteNumbersAreNotStrings) {
  expect_config_error("model: m\nsearch_space: s.yaml\nbudget: {latency: nan}\n", "must be a string");
  expect_config_error("model: m\nsearch_space: s.yaml\nbudget: {latency: 1e999}\n", "must be a string");
}

// An alias inside its own anchor makes yaml-cpp's node graph cyclic; nested aliases expand
// exponentially (425 bytes of YAML became 10^8 JSON values).
TEST(RunConfig, SelfReferentialAndExponentialAliasesAreErrors) {
  expect_config_error(kHead + "search: &s {steps: [*s]}\n", "nests deeper than 64 levels");
  std::string laughs = kHead + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    laughs += fmt::format("a{0}: &a{0} [", i);
    for (int k = 0; k < 10; ++k) laughs += fmt::format("{}*a{}", k ? ", " : "", i - 1);
    laughs += "]\n";
  }
  expect_config_error(laughs, "more than 100000 values once aliases are expanded");
  const RunConfig rc = parse(kHead + "search: &s {steps: 5}\nfinetune: *s\n");  // aliases themselves are fine
  EXPECT_EQ(rc.finetune.train.steps, 5);
}

// The dump holds every key with its default, and reads back to the same config.
TEST(RunConfig, DumpHoldsEveryDefaultAndReadsBack) {
  const RunConfig rc = parse(kHead + "search: {steps: 7}\n");
  const Json d = dump(rc);
  EXPECT_EQ(d["search"]["steps"], 7);
  EXPECT_EQ(d["search"]["lr_arch"], search::DnasOptions{}.lr_arch);
  EXPECT_EQ(d["finetune"]["steps"], search::FinetuneOptions{}.steps);
  EXPECT_EQ(d["closed_loop"], 2);
  EXPECT_TRUE(d["pareto"].contains("budget_count"));
  RunConfig back;
  opt::read(d, back, opt::Origin{"dump", ""}, "");
  EXPECT_EQ(dump(back), d);
}

}  // namespace
}  // namespace jointnas::pipeline
