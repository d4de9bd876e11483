// The reports' words and tables, computed from values derived by hand: the run summary (budget,
// workload, speed-up, quality drop, dropped blocks shown as dropped) and the Pareto report's
// headline and family table on synthetic measured points.
#include <cmath>

#include <gtest/gtest.h>

#include "jointnas/report/pareto_report.h"
#include "jointnas/report/run_summary.h"

namespace jointnas::report {
namespace {

Json layer(bool skip, int heads = 4) {
  return Json{{"num_attention_heads", heads}, {"num_key_value_heads", 2}, {"head_dim", 8}, {"intermediate_size", 88},
              {"skip", skip}, {"format_qkv", "bf16"}, {"format_o", "bf16"}, {"format_gate_up", "w8a16"}, {"format_down", "bf16"}};
}

RunSummary summary() {
  RunSummary s;
  s.run_dir = "runs/x";
  s.workload = {{"kind", "decode"}, {"batch", 1}, {"context", 256}};
  s.budget = {{"latency_ms", 0.5}, {"memory_bytes", 0}, {"params", 0}};
  s.budget_latency_ms = 0.5;
  s.budget_text = "0.6x";
  s.dense = {{"latency_ms", 1.0}, {"params", 1000}};
  s.predicted = {{"latency_ms", 0.49}, {"params", 600}};
  s.measured_original_ms = 1.2;
  s.measured_found_ms = 0.8;
  s.ppl_original = 7.5;
  s.ppl_found = 9.0;
  s.eval_text = "val.txt";
  s.layer_specs = Json::array({layer(false), layer(true), layer(false, 2)});
  return s;
}

TEST(RunSummary, StatesBudgetWorkloadSpeedupAndQualityInSentences) {
  const std::string md = summary_markdown(summary());
  EXPECT_NE(md.find("The latency budget is 0.5000 ms (0.6x) for a decode step (one new token) at context 256 and batch 1."),
            std::string::npos) << md;
  EXPECT_NE(md.find("measures 0.8000 ms, which MISSES the budget"), std::string::npos) << md;
  EXPECT_NE(md.find("1.50x as fast as the original"), std::string::npos) << md;  // 1.2 / 0.8
  EXPECT_NE(md.find("perplexity on val.txt is 9.000 against the original's 7.500 (1.20x)"), std::string::npos) << md;
  // The dropped block shows no widths or formats.
  EXPECT_NE(md.find("| 1 | dropped | - | - | - | - | - | - | - |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | yes | 2 / 2 | 8 | 88 | bf16 | bf16 | w8a16 | bf16 |"), std::string::npos) << md;
  EXPECT_NE(architecture_svg(summary().layer_specs).find(">dropped<"), std::string::npos);
}

TEST(RunSummary, AMetBudgetAndAPrefillWorkload) {
  RunSummary s = summary();
  s.measured_found_ms = 0.4;
  s.workload = {{"kind", "prefill"}, {"batch", 2}, {"tokens", 128}};
  const std::string md = summary_markdown(s);
  EXPECT_NE(md.find("for a prefill of 128 tokens at batch 2"), std::string::npos) << md;
  EXPECT_NE(md.find("which meets the budget"), std::string::npos) << md;
}

// A relative budget is held against the original measured in the same run: on a machine slower
// than when the table was profiled, 0.6x of the measured 1.2 ms is 0.72 ms, which 0.7 ms meets
// although the table's 0.5 ms does not hold it.
TEST(RunSummary, ARelativeBudgetIsMeasuredAgainstTheOriginal) {
  EXPECT_DOUBLE_EQ(measured_latency_budget("0.6x", 0.5, 1.2), 0.72);
  EXPECT_DOUBLE_EQ(measured_latency_budget("0.6x", 0.5, std::nullopt), 0.5);
  EXPECT_DOUBLE_EQ(measured_latency_budget("0.45", 0.45, 1.2), 0.45);  // milliseconds stay milliseconds
  RunSummary s = summary();
  s.measured_found_ms = 0.7;
  const std::string md = summary_markdown(s);
  EXPECT_NE(md.find("On this machine now, 0.6x of the original's measured 1.2000 ms is 0.7200 ms."), std::string::npos) << md;
  EXPECT_NE(md.find("measures 0.7000 ms, which meets the budget"), std::string::npos) << md;
}

// Issue 25, acceptance 2: the summary states task accuracy (the config's eval.tasks) of both
// models, per task with its standard error and as the mean over the tasks both have.
TEST(RunSummary, StatesTaskAccuracyOfBothModels) {
  RunSummary s = summary();
  auto tasks = [](double arc, double piqa) {
    return Json{{"limit", 200},
                {"results", Json::array({Json{{"task", "arc_easy"}, {"acc", arc}, {"acc_stderr", 0.03}},
                                         Json{{"task", "piqa"}, {"acc", piqa}, {"acc_stderr", 0.02}}})}};
  };
  s.tasks_original = tasks(0.40, 0.60);
  s.tasks_found = tasks(0.35, 0.58);
  const std::string md = summary_markdown(s);
  EXPECT_NE(md.find("Its mean accuracy over arc_easy, piqa (first 200 items each) is 0.465 against the original's 0.500 (-0.035)."),
            std::string::npos) << md;
  EXPECT_NE(md.find("| mean task accuracy (arc_easy, piqa (first 200 items each)) | 0.500 | 0.465 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| accuracy, piqa | 0.600 ± 0.020 | 0.580 ± 0.020 |"), std::string::npos) << md;
  EXPECT_EQ(summary_json(s)["tasks_found"]["results"][1]["acc"].get<double>(), 0.58);
  // Without tasks, no task rows.
  EXPECT_EQ(summary_markdown(summary()).find("accuracy"), std::string::npos);
}

MeasuredPoint pt(const std::string& id, const std::string& method, const std::string& family, double ms, double ppl) {
  MeasuredPoint m;
  m.id = id, m.method = method, m.family = family, m.ms = ms, m.ppl = ppl, m.ok = true, m.status = "measured";
  m.budget = family == "original" || family == "quant_only" ? "" : "0.5x";
  return m;
}

// The joint front is the sequential front at half the latency: at equal perplexity it is 2x
// faster everywhere the fronts overlap (both fronts are straight in (log ms, ppl)), and at equal
// latency it is better. Depth only is dominated by joint at every latency it reaches.
TEST(ParetoReport, HeadlineAndFamilyTableFromMeasuredFronts) {
  std::vector<MeasuredPoint> ms{pt("original", "original", "original", 4.0, 10.0),
                                pt("j1", "joint", "joint", 1.0, 20.0),   pt("j2", "joint", "joint", 2.0, 15.0),
                                pt("s1", "arch_only", "sequential", 2.0, 20.0), pt("s2", "seq_w8a8", "sequential", 4.0, 15.0),
                                pt("d1", "depth_only", "depth_only", 1.5, 25.0), pt("d2", "depth_only", "depth_only", 2.0, 21.0)};
  StudyInfo info;
  info.model = "m";
  info.workload = "decode step";
  info.budgets = {"0.5x"};
  const ParetoReport r = make_pareto_report(info, ms);
  const Json& h = r.headline["perplexity"];
  EXPECT_NEAR(h["speedup_max"].get<double>(), 2.0, 1e-9);
  EXPECT_NEAR(h["speedup_median"].get<double>(), 2.0, 1e-9);
  EXPECT_GT(h["gain_median"].get<double>(), 0.0);
  // Depth only over [1.5, 2] ms, as staircases: below 2 ms joint delivers 20 against depth's 25,
  // at 2 ms 15 against 21.
  EXPECT_NEAR(r.headline["perplexity_by_family"]["depth_only"]["gain_max"].get<double>(), 6.0, 1e-12);
  EXPECT_NEAR(r.headline["perplexity_by_family"]["depth_only"]["gain_median"].get<double>(), 5.0, 1e-12);
  EXPECT_NE(r.markdown.find("up to 2.00x faster than the best sequential front"), std::string::npos) << r.markdown;
  EXPECT_EQ(r.points.size(), ms.size());
  EXPECT_EQ(r.points[1]["family"], "joint");
  ASSERT_FALSE(r.charts.empty());
  EXPECT_EQ(r.charts[0].first, "pareto_ppl");
}

TEST(ParetoReport, SaysWhenTheJointMethodLoses) {
  std::vector<MeasuredPoint> ms{pt("j1", "joint", "joint", 2.0, 20.0), pt("j2", "joint", "joint", 4.0, 15.0),
                                pt("s1", "arch_only", "sequential", 1.0, 20.0), pt("s2", "arch_only", "sequential", 2.0, 15.0)};
  const ParetoReport r = make_pareto_report(StudyInfo{}, ms);
  EXPECT_NE(r.markdown.find("SLOWER than the best sequential front"), std::string::npos) << r.markdown;
  // Below 4 ms joint delivers 20 against 15; at 4 ms both 15: nowhere better.
  EXPECT_NE(r.markdown.find("nowhere better than the best sequential front (equal at best, at 4.0000 ms; median -5.000"),
            std::string::npos) << r.markdown;
  ms[1].ppl = 16;  // now worse everywhere: by 5 below 4 ms, by 1 at 4 ms
  EXPECT_NE(make_pareto_report(StudyInfo{}, ms).markdown.find("WORSE everywhere both cover (by 1.000 perplexity at best, at 4.0000 ms"),
            std::string::npos);
}

// Issue 25, acceptance 3: each llama-quantize preset against the joint front at its own measured
// latency. Joint runs 20 at 1 ms and 10 at 4 ms: straight in log2 ms, so 15 at 2 ms.
TEST(ParetoReport, EachLlamaQuantizePresetAgainstTheJointFrontAtItsLatency) {
  std::vector<MeasuredPoint> ms{pt("j1", "joint", "joint", 1.0, 20.0), pt("j2", "joint", "joint", 4.0, 10.0),
                                pt("q4", "llama_quantize_Q4_K_M", "llama_quantize", 2.0, 16.0),
                                pt("q5", "llama_quantize_Q5_K_M", "llama_quantize", 2.0, 14.0),
                                pt("q8", "llama_quantize_Q8_0", "llama_quantize", 8.0, 9.0)};
  const ParetoReport r = make_pareto_report(StudyInfo{}, ms);
  const Json& p = r.headline["llama_quantize_presets"];
  EXPECT_NEAR(p["Q4_K_M"]["joint_ppl_at_equal_latency"].get<double>(), 15.0, 1e-9);
  EXPECT_NEAR(p["Q5_K_M"]["joint_ppl_at_equal_latency"].get<double>(), 15.0, 1e-9);
  // At the preset's perplexity 16, joint needs 2^(4 / 5) ms: the preset's 2 ms over that.
  EXPECT_NEAR(p["Q4_K_M"]["joint_speedup_at_equal_ppl"].get<double>(), 2.0 / std::pow(2.0, 0.8), 1e-9);
  EXPECT_TRUE(p["Q8_0"]["joint_ppl_at_equal_latency"].is_null());  // beyond the joint front: no number
  EXPECT_NE(r.markdown.find("| Q4_K_M | 2.0000 | 16.000 | 15.000 |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("joint better by 1.000 perplexity"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("joint WORSE by 1.000 perplexity"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("slower than every joint point; the nearest, j2 at 4.0000 ms, has perplexity 10.000 (worse by 1.000)"),
            std::string::npos) << r.markdown;
}

// Issue 22, acceptance 2: a joint point that uses less than 97 % of its budget by the table has the
// derivation's next larger architecture and its cost named in the report; one that uses the budget
// does not.
TEST(ParetoReport, AJointPointBelow97PercentOfItsBudgetNamesTheNextLargerArchitecture) {
  std::vector<MeasuredPoint> ms{pt("original", "original", "original", 1.0, 10.0),
                                pt("j1", "joint", "joint", 0.4, 20.0), pt("j2", "joint", "joint", 0.5, 15.0)};
  ms[1].arch = Json{{"budget", {{"latency_ms", 0.2}}},
                    {"predicted", {{"latency_ms", 0.17}}},
                    {"selection", {{"winner", "derived"},
                                   {"derivation", {{"next_larger", {{"predicted", {{"latency_ms", 0.22}}}}}}}}}};
  ms[2].arch = Json{{"budget", {{"latency_ms", 0.25}}}, {"predicted", {{"latency_ms", 0.249}}},
                    {"selection", {{"winner", "depth_only"}}}};
  const ParetoReport r = make_pareto_report(StudyInfo{}, ms);
  EXPECT_NE(r.markdown.find("| j1 | 0.5x | 0.2000 | 0.1700 | 85.0 % | 0.400x | derived | 0.2200 ms (110.0 % of the budget) |"),
            std::string::npos)
      << r.markdown;
  EXPECT_NE(r.markdown.find("| j2 | 0.5x | 0.2500 | 0.2490 | 99.6 % | 0.500x | depth_only | - |"), std::string::npos)
      << r.markdown;
}

}  // namespace
}  // namespace jointnas::report
