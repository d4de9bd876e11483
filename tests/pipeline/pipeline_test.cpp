// The pipeline library in process: the run plan built from a typed config (every stage's options,
// the closed loop's corrected budget), and the checks that run before any stage.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/run.h"
#include "jointnas/pipeline/study_plan.h"
#include "tensor_assert.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

// A run config on the bundled stories260K; `data` replaces the data section.
std::string tiny_config(const std::string& extra, const std::string& data = "") {
  return "model: " + testing::repo_path("models/stories260K/stories260K.bin") + "\n" +
         "search_space: " + testing::repo_path("configs/spaces/stories260k.yaml") + "\n" + "budget: {latency: 0.6x}\n" +
         (data.empty() ? "data: {calibration: " + testing::repo_path("README.md") + "}\n" : data) + extra;
}

RunConfig parse(const std::string& text) { return parse_run_config(text, "/tmp/jnas_pipeline_test.yaml"); }

// The value after `flag` in a stage's arguments ("" when absent).
std::string arg(const StageJob& j, const std::string& flag) {
  const auto it = std::find(j.args.begin(), j.args.end(), flag);
  return it == j.args.end() || it + 1 == j.args.end() ? "" : *(it + 1);
}

const StageJob& job(const std::vector<StageJob>& jobs, const std::string& name) {
  for (const auto& j : jobs) {
    if (j.name == name) return j;
  }
  throw std::runtime_error("no stage " + name);
}

TEST(RunPlan, EveryStageGetsTheConfigsTypedValues) {
  const RunConfig c = parse(tiny_config("seed: 3\nthreads: 1\nworkload: {kind: decode, batch: 2, context: 100}\n"
                                        "search: {steps: 7, batch: 3, lr_arch: 0.25, relaxation: hard, select: derived, "
                                        "candidate_steps: 9}\n"
                                        "finetune: {steps: 5, lora_rank: 4}\neval: {bench_repeats: 9, window: 65}\n",
                                        "data: {calibration: c.txt, eval: e.txt}\n"));
  const RunPlan p = plan_run(c, "/tmp/r");
  const std::vector<StageJob> jobs = stage_jobs(p);
  const StageJob& s = job(jobs, "search");
  EXPECT_EQ(s.args[0], "search");
  EXPECT_EQ(arg(s, "--steps"), "7");
  EXPECT_EQ(arg(s, "--train-batch"), "3");
  EXPECT_EQ(arg(s, "--lr-arch"), "0.25");
  EXPECT_EQ(arg(s, "--relaxation"), "hard");
  EXPECT_EQ(arg(s, "--select"), "derived");
  EXPECT_EQ(arg(s, "--candidate-steps"), "9");
  EXPECT_EQ(arg(s, "--latency"), "0.6x");
  EXPECT_EQ(arg(s, "--seed"), "3");
  EXPECT_EQ(arg(s, "--batch"), "2");  // the workload's batch
  EXPECT_EQ(arg(s, "--context"), "100");
  EXPECT_EQ(arg(s, "--out"), "/tmp/r/search");
  const StageJob& f = job(jobs, "finetune");
  EXPECT_EQ(arg(f, "--arch"), "/tmp/r/search/arch.json");
  EXPECT_EQ(arg(f, "--steps"), "5");
  EXPECT_EQ(arg(f, "--lora-rank"), "4");
  // The original and the found model are timed in the same interleaved rounds (one process).
  const StageJob& b = job(jobs, "latency");
  EXPECT_EQ(arg(b, "--models"), c.model.str() + ",/tmp/r/model");
  EXPECT_EQ(arg(b, "--rounds"), std::to_string(c.eval.bench_rounds));
  EXPECT_EQ(arg(b, "--contexts"), "100");
  EXPECT_EQ(arg(b, "--batch"), "2");
  EXPECT_EQ(arg(b, "--repeats"), "9");
  EXPECT_EQ(arg(job(jobs, "ppl_found"), "--window"), "65");
  EXPECT_EQ(arg(job(jobs, "ppl_found"), "--teacher"), c.model.str());
  EXPECT_EQ(job(jobs, "profile").args[0], "profile");
}

// The original and the found model come from one bench --models log: each one's fastest round.
TEST(RunLatency, EachModelsFastestRoundFromOneLog) {
  const Json log = parse_json(R"({"rounds": 5, "models": [
      {"model": "/m/orig", "decode": [{"context": 64, "ms": 2.0, "ms_best": 1.5}]},
      {"model": "/r/model", "decode": [{"context": 64, "ms": 1.2, "ms_best": 1.0}], "prefill": [{"ms_best": "x"}]}]})",
                              "latency.json");
  EXPECT_DOUBLE_EQ(*latency_of(log, "/m/orig", false), 1.5);
  EXPECT_DOUBLE_EQ(*latency_of(log, "/r/model", false), 1.0);
  EXPECT_FALSE(latency_of(log, "/r/model", true).has_value());  // not a number
  EXPECT_FALSE(latency_of(log, "/m/orig", true).has_value());   // not measured
  EXPECT_FALSE(latency_of(log, "/other", false).has_value());
  EXPECT_FALSE(latency_of(Json(), "/m/orig", false).has_value());
  EXPECT_THROW(check_listable_path("/data/a,b", "model"), ConfigError);
  EXPECT_NO_THROW(check_listable_path("/data/a b", "model"));
}

// Issue 22: the joint points of a study select their architecture (portfolio by default); the
// baselines keep their DNAS argmax, the usual pipelines they stand for.
TEST(StudyPlan, OnlyTheJointSearchSelectsItsArchitecture) {
  const RunConfig c = parse(tiny_config("pareto: {budgets: [0.5x], methods: [joint, sequential]}\n"));
  const model::Checkpoint ck = model::load_checkpoint(c.model);
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(c.search_space, ck.config, "cpu");
  Study study = make_study(c, space, "/tmp/jnas_study_plan", 1);
  build_points(study);
  const StudyJobs j = study_jobs(study);
  EXPECT_EQ(arg(job(j.round1, "joint-0.5x-s0/search"), "--select"), "portfolio");
  // The scores are measured once, before any search, and every joint search reads them.
  EXPECT_EQ(arg(job(shared_jobs(study), "scores"), "--out"), "/tmp/jnas_study_plan/scores.json");
  EXPECT_EQ(arg(job(j.round1, "joint-0.5x-s0/search"), "--scores"), "/tmp/jnas_study_plan/scores.json");
  EXPECT_EQ(arg(job(j.round1, "arch_only-0.5x/search"), "--select"), "dnas");
  EXPECT_EQ(arg(job(j.round1, "seq_mix-0.5x/search_arch"), "--select"), "dnas");
}

TEST(RunPlan, APrefillWorkloadBenchesThePrefillAndAGivenTableSkipsTheProfile) {
  const RunConfig c = parse(tiny_config("workload: {kind: prefill, tokens: 32}\ntable: t.json\n"));
  const std::vector<StageJob> jobs = stage_jobs(plan_run(c, "/tmp/r"));
  EXPECT_EQ(arg(job(jobs, "latency"), "--prefill"), "32");
  EXPECT_EQ(arg(job(jobs, "latency"), "--contexts"), "");
  EXPECT_TRUE(std::none_of(jobs.begin(), jobs.end(), [](const StageJob& j) { return j.name == "profile"; }));
  EXPECT_EQ(arg(job(jobs, "search"), "--table"), "/tmp/t.json");
}

// The closed loop holds the table to budget x predicted / measured, only when the measurement
// misses the budget.
TEST(ClosedLoop, TightensTheBudgetByTheTablesBiasOnlyWhenTheMeasurementMisses) {
  EXPECT_NEAR(*closed_loop_budget(1.0, 1.25, 0.9), 0.72, 1e-12);
  EXPECT_FALSE(closed_loop_budget(1.0, 0.95, 0.9).has_value());
  EXPECT_FALSE(closed_loop_budget(0.0, 1.25, 0.9).has_value());
  EXPECT_FALSE(closed_loop_budget(1.0, 0.0, 0.9).has_value());
}

void expect_check_error(const std::string& text, RunMode mode, const std::string& what) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    check(parse(text), mode);
    FAIL() << "no error for\n" << text;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}

TEST(RunConfigCheck, DerivedValuesFailBeforeAnyStage) {
  if (!fs::exists(testing::repo_path("models/stories260K/stories260K.bin"))) GTEST_SKIP();
  // Without a workload the default context (512) does not fit a model of 512 positions.
  expect_check_error(tiny_config(""), RunMode::kRun, "'workload.context' 512 does not fit the model");
  const std::string wl = "workload: {kind: decode, context: 256}\n";
  EXPECT_NO_THROW(check(parse(tiny_config(wl)), RunMode::kRun));
  // stories260K has 512 positions: a decode step at context 512 needs 513.
  expect_check_error(tiny_config("workload: {kind: decode, context: 512}\n"), RunMode::kRun, "'workload.context' 512");
  expect_check_error(tiny_config("workload: {kind: decode, context: 99999999}\n"), RunMode::kRun, "'workload.context'");
  expect_check_error(tiny_config("workload: {kind: prefill, tokens: 600}\n"), RunMode::kRun, "'workload.tokens' 600");
  // The default perplexity window (513) does not fit a model of 512 positions.
  expect_check_error(tiny_config(wl, "data: {calibration: " + testing::repo_path("README.md") + ", eval: " +
                                         testing::repo_path("README.md") + "}\n"),
                     RunMode::kRun, "perplexity window 513");
  expect_check_error(tiny_config(wl + "threads: 4096\n"), RunMode::kRun, "'threads' 4096 exceeds");
  expect_check_error(tiny_config(wl), RunMode::kStudy, "'data.eval'");
}

TEST(RunConfigCheck, FilesAreCheckedAndNamed) {
  if (!fs::exists(testing::repo_path("models/stories260K/stories260K.bin"))) GTEST_SKIP();
  const std::string no_data = "model: " + testing::repo_path("models/stories260K/stories260K.bin") + "\nsearch_space: " +
                              testing::repo_path("configs/spaces/stories260k.yaml") + "\nbudget: {latency: 0.6x}\n";
  expect_check_error(no_data, RunMode::kRun, "'data.calibration' is required");
  expect_check_error(tiny_config("workload: {kind: decode, context: 256}\ntable: /nonexistent/table.json\n"), RunMode::kRun, "'table': /nonexistent/table.json does not exist");
  const std::string fifo = (fs::temp_directory_path() / ("jnas_fifo_" + std::to_string(::getpid()))).string();
  ::mkfifo(fifo.c_str(), 0600);
  expect_check_error("model: " + testing::repo_path("models/stories260K/stories260K.bin") + "\nsearch_space: " +
                         testing::repo_path("configs/spaces/stories260k.yaml") + "\nbudget: {latency: 0.6x}\ndata: {calibration: " +
                         fifo + "}\n",
                     RunMode::kRun, "is a FIFO");
  fs::remove(fifo);
}

}  // namespace
}  // namespace jointnas::pipeline
