// Options declared once, checked at the command line: every field of every command's options
// struct is a flag in `--help` with its default, `--dump-config` prints the same defaults, and a
// run config that is wrong anywhere fails before any stage starts, with exit 2 and the key named.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "cli_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/arch_stage.h"
#include "jointnas/pipeline/model_tools.h"
#include "jointnas/pipeline/export_stage.h"
#include "jointnas/pipeline/quantize_stage.h"
#include "jointnas/pipeline/scores_stage.h"
#include "jointnas/pipeline/study.h"
#include "jointnas/pipeline/tasks_stage.h"

namespace jointnas::testing::cli {
namespace {

// Every field as (long flag, JSON default) in declaration order; positionals are left out.
struct FlagCollector {
  std::vector<std::pair<std::string, Json>> flags;
  template <class T, class... Rest>
  void operator()(const opt::Key& k, T& x, Rest&&... rest) {
    if (k.flag != nullptr && *k.flag == '\0') return;
    std::string f = opt::flag_of(k);
    if (k.flag != nullptr && *k.flag == '-') {  // "-m,--model"
      const std::string spec = k.flag;
      f = spec.substr(spec.find("--"));
    }
    Json j;
    opt::Writer w(j);
    w(k, x, std::forward<Rest>(rest)...);
    flags.emplace_back(f, j[k.name]);
  }
  template <class S>
  void section(const opt::Key&, S& s) {
    fields(*this, s);
  }
};

// The line of `help` that documents `flag` ("" when none).
std::string help_line(const std::string& help, const std::string& flag) {
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    const auto p = line.find(flag);
    if (p != std::string::npos && (p + flag.size() == line.size() || line[p + flag.size()] == ' ' ||
                                   line[p + flag.size()] == ',')) {
      return line;
    }
  }
  return "";
}

// `jointnas <cmd> --help` lists every field with its default; `--dump-config` prints every
// default that --help shows.
template <class O>
void check_command(const std::string& cmd, const std::string& required_args, O defaults = O{}) {
  SCOPED_TRACE(cmd);
  const CmdResult help = run(cmd + " --help");
  ASSERT_EQ(help.code, 0) << help.err;
  FlagCollector c;
  fields(c, defaults);
  ASSERT_FALSE(c.flags.empty());
  const CmdResult dump = run(cmd + " " + required_args + " --dump-config");
  ASSERT_EQ(dump.code, 0) << dump.err;
  const Json dumped = parse_json(dump.out, "--dump-config");
  Json all = opt::write(defaults);
  for (const auto& fd : c.flags) {
    const std::string& flag = fd.first;
    const Json& dflt = fd.second;
    const std::string line = help_line(help.out, flag);
    EXPECT_FALSE(line.empty()) << flag << " is not in --help:\n" << help.out;
    // The default --help shows ("--steps INT=100") is the struct's, as --dump-config prints it.
    if (dflt.is_number() || (dflt.is_string() && !dflt.get<std::string>().empty())) {
      const auto eq = line.find('=', line.find(flag));
      ASSERT_NE(eq, std::string::npos) << flag << ": --help shows no default: " << line;
      const std::string shown = line.substr(eq + 1, line.find(' ', eq) - eq - 1);
      if (dflt.is_number()) {
        EXPECT_EQ(std::stod(shown), dflt.get<double>()) << flag << ": " << line;
      } else {
        EXPECT_EQ(shown, dflt.get<std::string>()) << flag << ": " << line;
      }
    }
  }
  // Every key of the options is in the dump with its default (required ones hold the test's values).
  std::function<void(const Json&, const Json&, const std::string&)> same = [&](const Json& a, const Json& b,
                                                                             const std::string& at) {
    for (const auto& [k, v] : a.items()) {
      ASSERT_TRUE(b.contains(k)) << at + k << " missing from --dump-config";
      if (v.is_object()) {
        same(v, b[k], at + k + ".");
      } else if (required_args.find(opt::kebab(k.c_str())) == std::string::npos && k != "model") {
        EXPECT_EQ(v, b[k]) << at + k;
      }
    }
  };
  same(all, dumped, "");
}

TEST(CliOptions, EveryCommandsHelpAndDumpConfigShowTheSameDefaults) {
  check_command<pipeline::SearchOptions>("search", "--model m --space s --table t --text x --out o");
  check_command<pipeline::FinetuneStageOptions>("finetune", "--model m --arch a --out o");
  check_command<pipeline::ArchStageOptions>("arch", "--model m --space s --table t --out o");
  check_command<pipeline::ScoresOptions>("scores", "--model m --space s --table t --text x --out o");
  check_command<pipeline::ImportanceOptions>("importance", "--model m --calib c --out o");
  check_command<pipeline::ProfileStageOptions>("profile", "--config c --out o");
  check_command<pipeline::BenchOptions>("bench", "");
  check_command<pipeline::PplOptions>("eval ppl", "--model m --text t");
  check_command<pipeline::TasksOptions>("eval tasks", "--tasks piqa");
  check_command<pipeline::QuantizeOptions>("quantize", "--model m --out o");
  check_command<pipeline::ExportOptions>("export", "--model m --out o");
  check_command<pipeline::InspectOptions>("inspect", "m");
  check_command<pipeline::ConvertOptions>("convert", "--model m --out o");
  check_command<pipeline::GenerateCommandOptions>("generate", "--model m");
}

// The run config's --dump-config holds every key with its default.
TEST(CliOptions, RunDumpConfigPrintsTheEffectiveConfig) {
  const fs::path d = scratch("dump_config");
  const std::string cfg = (d / "c.yaml").string();
  std::ofstream(cfg) << "model: m\nsearch_space: s.yaml\nbudget: {latency: 0.6x}\nsearch: {steps: 7}\n";
  const CmdResult r = run("run " + cfg + " --dump-config");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = parse_json(r.out, "stdout");
  EXPECT_EQ(j["search"]["steps"], 7);
  EXPECT_EQ(j["search"]["lr_arch"], search::DnasOptions{}.lr_arch);
  EXPECT_EQ(j["finetune"]["steps"], search::FinetuneOptions{}.steps);
  EXPECT_EQ(j["workload"]["context"], profile::Workload{}.context);
  EXPECT_TRUE(j.contains("pareto"));
}

// A config that is wrong anywhere fails in well under two seconds, exit 2, naming the key, and
// leaves no run directory behind.
TEST(CliOptions, BadConfigsFailFastWithExitTwoAndTheKey) {
  const std::string model = repo_path("models/stories260K/stories260K.bin");
  if (!fs::exists(model)) GTEST_SKIP();
  const fs::path d = scratch("bad_run_config");
  auto config = [&](const std::string& name, const std::string& extra) {
    const std::string p = (d / (name + ".yaml")).string();
    std::ofstream(p) << "model: " << model << "\nsearch_space: " << repo_path("configs/spaces/stories260k.yaml")
                     << "\nrun_dir: " << (d / name).string() << "\ndata: {calibration: " << repo_path("README.md")
                     << "}\n" << extra;
    return p;
  };
  struct Case {
    const char* name;
    std::string extra, needle;
  };
  const std::vector<Case> cases{
      {"flag_value", "budget: {latency: 0.6x}\nsearch: {steps: \"--out=x\"}\n", "'search.steps' must be an integer"},
      {"unknown_key", "budget: {latency: 0.6x}\nsearch: {stepz: 3}\n", "unknown key 'search.stepz'"},
      {"no_budget", "", "no budget is set"},
      {"bad_budget", "budget: {latency: soon}\n", "budget"},
      {"negative_memory", "budget: {memory_mib: -5}\n", "'budget.memory_mib' must be a finite number"},
      {"context", "budget: {latency: 0.6x}\nworkload: {kind: decode, context: 99999999}\n", "'workload.context'"},
      {"prefill", "budget: {latency: 0.6x}\nworkload: {kind: prefill, tokens: 600}\n", "'workload.tokens' 600"},
      {"closed_loop", "budget: {latency: 0.6x}\nclosed_loop: lots\n", "'closed_loop' must be an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto t0 = std::chrono::steady_clock::now();
    const CmdResult r = run("run " + config(c.name, c.extra));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    expect_error(r, 2, c.needle);
    EXPECT_LT(s, 2.0);
    EXPECT_FALSE(fs::exists(d / c.name / "stages.json"));  // no stage ran
  }
}

// The derived values of a study are checked too: a prefill workload's bench has no decode context.
TEST(CliOptions, ParetoChecksTheStudyBeforeAnyStage) {
  const std::string model = repo_path("models/stories260K/stories260K.bin");
  if (!fs::exists(model)) GTEST_SKIP();
  const fs::path d = scratch("bad_study");
  const std::string p = (d / "s.yaml").string();
  std::ofstream(p) << "model: " << model << "\nsearch_space: " << repo_path("configs/spaces/stories260k.yaml")
                   << "\nrun_dir: " << (d / "s").string() << "\ndata: {calibration: " << repo_path("README.md")
                   << ", eval: " << repo_path("README.md") << "}\neval: {window: 129}\n"
                   << "workload: {kind: decode, context: 256}\n"
                   << "pareto: {budgets: [0.5x, 2x]}\n";
  expect_error(run("pareto " + p), 2, "pareto budget '2x'");
  EXPECT_FALSE(fs::exists(d / "s" / "stages.json"));
}

}  // namespace
}  // namespace jointnas::testing::cli
