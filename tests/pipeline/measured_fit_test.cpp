// The measured fit of the selection (pipeline/measured_fit.h, issue 22) against a model of the
// target: a "true" latency table that disagrees with the searched one on one format, as the CPU
// disagrees with its table on w8a8 MLPs. No timing: the target is the true table's prediction.
#include <algorithm>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "../search/product_table.h"
#include "jointnas/core/error.h"
#include "jointnas/pipeline/measured_fit.h"
#include "jointnas/profile/predict.h"
#include "jointnas/search/cost.h"
#include "jointnas/search/derive.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/sensitivity.h"

namespace jointnas::pipeline {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 101;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 64;
  return c;
}

constexpr const char* kSpace = R"(
hidden: [128, 256]
depth: [1, 2, 3, 4]
layers:
  heads: [1, 2]
  head_dim: [32, 64]
  intermediate: [128, 256, 384, 512]
formats: [bf16, w8a16]
)";

// Scores that prefer the larger choice everywhere, w8a16 a little worse than bf16.
search::ScoreTable scores(const search::SearchSpace& s) {
  search::ScoreTable t;
  t.source = "test";
  for (size_t h = 0; h < s.hidden.size(); ++h) {
    std::vector<double> row;
    for (size_t d = 0; d < s.depth.size(); ++d) row.push_back(3.0 * (s.hidden.size() - 1 - h) + 2.0 * (s.depth.size() - 1 - d));
    t.global.push_back(row);
    std::vector<search::LayerScores> layers;
    for (const search::LayerChoices& lc : s.layers) {
      search::LayerScores ls;
      const size_t na = lc.kv_groups.size() * lc.head_dims.size();
      for (size_t i = 0; i < na; ++i) ls.attention.push_back(0.3 * static_cast<double>(na - 1 - i));
      for (size_t i = 0; i < lc.intermediate.size(); ++i) ls.intermediate.push_back(0.5 * static_cast<double>(lc.intermediate.size() - 1 - i));
      for (int k = 0; k < search::kNumFormatSlots; ++k) ls.formats[k] = {0.0, 0.02};
      layers.push_back(ls);
    }
    t.layers.push_back(layers);
  }
  return t;
}

struct Fixture {
  model::LlamaConfig c = config();
  search::SearchSpace space = search::SearchSpace::from_yaml(kSpace, c, "<test>", "cpu");
  std::vector<int64_t> rank = {3, 1, 0, 2};
  profile::Workload w;
  profile::LatencyTable table, truth;
  search::CostContext cc;
  search::ScoreTable st = scores(space);
  MeasuredBudget mb;

  // The target runs w8a16 linears `w8_factor` times as long as the searched table says.
  explicit Fixture(double w8_factor) {
    w.context = 32;
    table = search::product_table(c, search::cost_space(space, c, rank), w);
    for (const auto& [k, e] : table.entries()) {
      const bool w8 = k.find("w8a16") != std::string::npos;
      const double ms = e.ms * (w8 ? w8_factor : 1.0);
      truth.set(k, {ms, ms, ms, 1});
    }
    cc = search::CostContext{&c, &space, rank, &table, w, 2};
    auto [dc, ds] = search::arch_specs(c, space, search::largest_arch(space), rank);
    mb.reference = profile::Blueprint{dc, ds};
  }
  double dense_ms() const { return search::arch_cost(cc, search::largest_arch(space)).latency_ms; }
  double true_ms(const profile::Blueprint& b) const { return profile::predict(b.config, b.specs, truth, w, 2).latency_ms; }
  double true_ratio(const search::Arch& a) const {
    auto [ac, as] = search::arch_specs(c, space, a, rank);
    return true_ms({ac, as}) / true_ms(mb.reference);
  }
  MeasuredFitOptions options(int64_t steps) const {
    MeasuredFitOptions o;
    o.steps = steps;
    o.measure = [this](const std::vector<profile::Blueprint>& bps) {
      std::vector<profile::MeasuredBlueprint> out;
      for (const auto& b : bps) out.push_back({true_ms(b), true_ms(b), {true_ms(b)}});
      return out;
    };
    return o;
  }
  // Every block in `format` (bf16 when empty), the first `depth_index + 1` blocks kept.
  search::Arch depth_arch(int64_t depth_index, const std::string& format = "") const {
    search::Budget big;
    big.latency_ms = 1e9;
    search::Arch a = format.empty() ? search::depth_only_arch(cc, big) : search::depth_only_arch(cc, big, format);
    a.depth = depth_index;
    return a;
  }
  FitCandidate derived() const {
    return {"derived", [this](const search::Budget& b) { return search::derive(cc, b, st, {}).arch; }, false};
  }
};

// Blocks a blueprint keeps.
int64_t kept_blocks(const profile::Blueprint& bp) {
  int64_t n = 0;
  for (const auto& sp : bp.specs) n += sp.skip ? 0 : 1;
  return n;
}

// A target that times the original (bf16 in every block) at ref() and every other model at
// value(its kept blocks): the fastest round and the median alike.
std::function<std::vector<profile::MeasuredBlueprint>(const std::vector<profile::Blueprint>&)> target_by_blocks(
    std::function<double(int64_t)> value, std::function<double()> ref = [] { return 1.0; }) {
  return [value, ref](const std::vector<profile::Blueprint>& bps) {
    std::vector<profile::MeasuredBlueprint> out;
    for (const auto& bp : bps) {
      const int64_t n = kept_blocks(bp);
      const bool reference = bp.specs.front().format_of(0) == "bf16" && n == static_cast<int64_t>(bp.specs.size());
      const double v = reference ? ref() : value(n);
      out.push_back({v, v, {v}});
    }
    return out;
  };
}

// Depth only with every linear in w8a16, and its architecture `short_by` blocks short of all.
FitCandidate depth_w8a16(const search::CostContext& cc) {
  return {"depth_w8a16", [&cc](const search::Budget& b) { return search::depth_only_arch(cc, b, "w8a16"); }, false};
}
search::Arch w8a16_short_by(const search::CostContext& cc, int64_t short_by) {
  search::Budget all;
  all.latency_ms = 1e9;
  search::Arch a = search::depth_only_arch(cc, all, "w8a16");
  a.depth -= short_by;
  return a;
}

TEST(MeasuredFit, ACandidateTheTableUnderestimatesIsRefitUnderTheMeasuredBudget) {
  Fixture fx(2.2);  // w8a16 costs more than bf16 on this target; the table says half
  fx.mb.fraction = 0.6;
  search::Budget b;
  b.latency_ms = 0.6 * fx.dense_ms();
  const search::Arch by_table = search::derive(fx.cc, b, fx.st, {}).arch;
  ASSERT_GT(fx.true_ratio(by_table), 0.6);  // the test can fail: the table alone misses the budget
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {fx.derived()}, fx.options(3));
  ASSERT_EQ(r.kept.size(), 1u);
  const double got = fx.true_ratio(r.kept[0].arch);
  EXPECT_LE(got, 0.6);
  EXPECT_GE(got, 0.5);  // not shrunk far below the budget
  EXPECT_EQ(r.record["candidates"]["derived"]["kept"].get<double>(), got);
  EXPECT_GE(r.record["candidates"]["derived"]["steps"].size(), 2u);
}

TEST(MeasuredFit, ACandidateTheTableOverestimatesGrowsIntoTheBudget) {
  Fixture fx(0.3);  // w8a16 is cheaper on the target than the table says
  fx.mb.fraction = 0.6;
  search::Budget b;
  b.latency_ms = 0.6 * fx.dense_ms();
  const search::Arch by_table = search::derive(fx.cc, b, fx.st, {}).arch;
  const double before = fx.true_ratio(by_table);
  ASSERT_LT(before, 0.97 * 0.6);  // the table alone leaves measured budget unused
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {fx.derived()}, fx.options(3));
  ASSERT_EQ(r.kept.size(), 1u);
  const double got = fx.true_ratio(r.kept[0].arch);
  EXPECT_LE(got, 0.6);
  EXPECT_GT(got, before);
  EXPECT_LT(fx.st.score(fx.space, r.kept[0].arch, fx.rank), fx.st.score(fx.space, by_table, fx.rank));
}

TEST(MeasuredFit, FixedCandidatesOverTheBudgetAreDroppedWithTheReason) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.5;
  search::Budget b;
  b.latency_ms = 0.5 * fx.dense_ms();
  const search::Arch big = search::largest_arch(fx.space);
  const FitCandidate fixed{"dnas", [big](const search::Budget&) { return big; }, true};
  const FitCandidate none{"depth_only", [](const search::Budget&) -> search::Arch {
                            throw ConfigError("depth only: even 1 blocks miss the budget");
                          }, false};
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {fx.derived(), fixed, none}, fx.options(2));
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].name, "derived");
  EXPECT_NE(r.record["candidates"]["dnas"]["dropped"].get<std::string>().find("above the 0.5000x limit"),
            std::string::npos);
  EXPECT_EQ(r.record["candidates"]["dnas"]["steps"].size(), 1u);  // measured once
  EXPECT_NE(r.record["candidates"]["depth_only"]["dropped"].get<std::string>().find("even 1 blocks"),
            std::string::npos);
  // Nothing within the budget: the candidate that measured least is kept, so the stage still ends.
  const FitResult only = fit_to_measured_budget(fx.cc, b, fx.mb, {fixed}, fx.options(2));
  ASSERT_EQ(only.kept.size(), 1u);
  EXPECT_EQ(only.kept[0].name, "dnas");
}

// The generator gives the same architecture at the secant's aim, while the next larger one (more
// in the table) measures within the limit: the fit steps on to it instead of stopping. The target
// here: 3 blocks in w8a16 measure 0.80 of the original, 4 blocks 0.82, the limit is 0.83.
TEST(MeasuredFit, AnArchitectureThatTheAimRederivesUnchangedStepsOnToTheNextLarger) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.83;
  MeasuredFitOptions o = fx.options(3);
  o.measure = target_by_blocks([](int64_t n) { return n == 4 ? 0.82 : n == 3 ? 0.80 : 0.55; });
  const FitCandidate w8 = depth_w8a16(fx.cc);
  // A table budget between 3 and 4 blocks in w8a16, 4 blocks costing more than the secant's aim.
  search::Budget b;
  const search::Arch four = w8a16_short_by(fx.cc, 0), three = w8a16_short_by(fx.cc, 1);
  const double t3 = search::arch_cost(fx.cc, three).latency_ms, t4 = search::arch_cost(fx.cc, four).latency_ms;
  ASSERT_GT(t4, t3 * 0.985 * 0.83 / 0.80 * 1.001);  // the test can fail: the aim alone stays at 3 blocks
  b.latency_ms = t3 * 1.001;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {w8}, o);
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].arch.depth, four.depth);
  EXPECT_DOUBLE_EQ(r.record["candidates"]["depth_w8a16"]["kept"].get<double>(), 0.82);
  EXPECT_EQ(r.record["candidates"]["depth_w8a16"]["steps"].size(), 2u);
}

// Measured within the limit is not the end: the next larger architecture is timed too, and kept
// when it is within as well; the fit stops when the least architecture over the limit is the next
// one up, and times no architecture twice. The target: 2 blocks in w8a16 measure 0.815 of the
// original (98 % of the 0.83 limit), 3 blocks 0.825, 4 blocks 0.90.
TEST(MeasuredFit, AnArchitectureWithinTheLimitIsNotTheEndTheNextLargerIsTimedToo) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.83;
  MeasuredFitOptions o = fx.options(4);
  int timed = 0;
  o.measure = target_by_blocks([&](int64_t n) {
    ++timed;
    return n == 4 ? 0.90 : n == 3 ? 0.825 : n == 2 ? 0.815 : 0.5;
  });
  const FitCandidate w8 = depth_w8a16(fx.cc);
  search::Budget b;
  const search::Arch four = w8a16_short_by(fx.cc, 0), two = w8a16_short_by(fx.cc, 2);
  b.latency_ms = search::arch_cost(fx.cc, two).latency_ms * 1.001;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {w8}, o);
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].arch.depth, four.depth - 1);
  const Json& steps = r.record["candidates"]["depth_w8a16"]["steps"];
  ASSERT_EQ(steps.size(), 3u);  // 2 blocks, 3 blocks, 4 blocks (over): the bracket is closed
  EXPECT_EQ(timed, 3);
  EXPECT_DOUBLE_EQ(steps[2]["measured"].get<double>(), 0.90);
  EXPECT_DOUBLE_EQ(r.record["candidates"]["depth_w8a16"]["kept"].get<double>(), 0.825);
}

// The original is the same model at every step: a step in which it reads slower is a disturbed
// machine, and the candidates are measured against its fastest round of all steps. Here the
// original takes 1.0 in the first step and 1.3 after it; 2 blocks in w8a16 take 0.80, 3 blocks
// 0.95, every block 1.0; the limit is 0.83. Against each step's own original the 3-block model
// would read 0.73 and be kept.
TEST(MeasuredFit, TheOriginalsFastestRoundOfAllStepsIsTheMeasure) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.83;
  MeasuredFitOptions o = fx.options(4);
  int calls = 0;  // one original per timing
  o.measure = target_by_blocks([](int64_t n) { return n >= 4 ? 1.0 : n == 3 ? 0.95 : n == 2 ? 0.80 : 0.5; },
                               [&] { return ++calls == 1 ? 1.0 : 1.3; });
  search::Budget b;
  const search::Arch two = w8a16_short_by(fx.cc, 2);
  b.latency_ms = search::arch_cost(fx.cc, two).latency_ms * 1.001;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {depth_w8a16(fx.cc)}, o);
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].arch.depth, two.depth);
  const Json& steps = r.record["candidates"]["depth_w8a16"]["steps"];
  ASSERT_GE(steps.size(), 2u);
  EXPECT_DOUBLE_EQ(steps[1]["measured"].get<double>(), 0.95);
  EXPECT_DOUBLE_EQ(steps[1]["reference_ms"].get<double>(), 1.0);
}

// A reference slow in the first step only (1.3, its usual 1.0 after): the three-block model read
// 0.95 / 1.3 = 0.73 there, within the 0.83 limit; against the reference's fastest round of all
// steps it measures 0.95, over, and is not kept. A fixed two-block candidate timed in that step
// (0.80) is.
TEST(MeasuredFit, AKeptArchitectureIsReadAgainstTheFastestReferenceOfAllSteps) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.83;
  MeasuredFitOptions o = fx.options(4);
  o.reference_instances = 1;
  int calls = 0;
  o.measure = target_by_blocks([](int64_t n) { return n >= 4 ? 1.0 : n == 3 ? 0.95 : n == 2 ? 0.80 : 0.5; },
                               [&] { return ++calls == 1 ? 1.3 : 1.0; });
  search::Budget b;
  const search::Arch three = w8a16_short_by(fx.cc, 1), two = w8a16_short_by(fx.cc, 2);
  b.latency_ms = search::arch_cost(fx.cc, three).latency_ms * 1.001;
  const FitCandidate fixed_two{"two", [two](const search::Budget&) { return two; }, true};
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {depth_w8a16(fx.cc), fixed_two}, o);
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].name, "two");
  EXPECT_DOUBLE_EQ(r.record["candidates"]["two"]["kept"].get<double>(), 0.80);
  const Json& depth = r.record["candidates"]["depth_w8a16"];
  EXPECT_TRUE(depth.contains("dropped")) << depth.dump();
  ASSERT_GE(depth["steps"].size(), 1u);
  EXPECT_EQ(depth["steps"][0]["architecture"]["depth"], 3);
  EXPECT_NEAR(depth["steps"][0]["measured"].get<double>(), 0.95 / 1.3, 1e-12);
  EXPECT_DOUBLE_EQ(depth["steps"][0]["measured_at_end"].get<double>(), 0.95);
}

// Two instances of the reference in every step (o.reference_instances): the faster counts.
TEST(MeasuredFit, TheReferenceIsTimedInSeveralInstancesAndTheFastestCounts) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.83;
  MeasuredFitOptions o = fx.options(0);
  int calls = 0;
  o.measure = target_by_blocks([](int64_t n) { return n == 3 ? 0.95 : 0.80; },
                               [&] { return ++calls == 1 ? 1.3 : 1.0; });
  search::Budget b;
  const search::Arch three = w8a16_short_by(fx.cc, 1);
  b.latency_ms = search::arch_cost(fx.cc, three).latency_ms * 1.001;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {depth_w8a16(fx.cc)}, o);
  EXPECT_EQ(calls, 2);
  EXPECT_DOUBLE_EQ(r.record["candidates"]["depth_w8a16"]["steps"][0]["measured"].get<double>(), 0.95);
  EXPECT_DOUBLE_EQ(r.record["candidates"]["depth_w8a16"]["steps"][0]["reference_ms"].get<double>(), 1.0);
}

// When no candidate measures within the budget, every one measured within the near-miss band (3 %)
// of the least is kept for the portfolio to compare; one further off is not. Fixed candidates
// here: 0.60, 0.61 and 0.70 of the original against a 0.5 limit.
TEST(MeasuredFit, WhenNothingFitsTheCandidatesWithinNoiseOfTheLeastAreAllKept) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.5;
  MeasuredFitOptions o = fx.options(2);
  o.measure = target_by_blocks([](int64_t n) { return n == 3 ? 0.60 : n == 2 ? 0.61 : 0.70; });
  auto short_by = [&](const char* name, int64_t k) {
    return FitCandidate{name, [a = w8a16_short_by(fx.cc, k)](const search::Budget&) { return a; }, true};
  };
  search::Budget b;
  b.latency_ms = 0.5 * fx.dense_ms();
  const FitResult r =
      fit_to_measured_budget(fx.cc, b, fx.mb, {short_by("three", 1), short_by("two", 2), short_by("one", 3)}, o);
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].name, "three");
  EXPECT_EQ(r.kept[1].name, "two");
  EXPECT_DOUBLE_EQ(r.record["candidates"]["two"]["kept_over_the_limit"].get<double>(), 0.61);
  EXPECT_FALSE(r.record["candidates"]["one"].contains("kept_over_the_limit"));
}

// "No slower than this model": the limit model is timed in the same rounds, so its own shape is
// within the limit even when its share of the original, measured elsewhere, said 0.80x and these
// rounds say 0.82x (the original ran fast here).
TEST(MeasuredFit, ALimitModelIsTimedInTheSameRoundsAsTheCandidates) {
  Fixture fx(1.0);
  search::Budget b4;
  b4.latency_ms = 1e9;
  search::Arch three = search::depth_only_arch(fx.cc, b4);
  three.depth -= 1;
  auto [lc, ls] = search::arch_specs(fx.c, fx.space, three, fx.rank);
  const profile::Blueprint limit_model{lc, ls};
  MeasuredFitOptions o = fx.options(2);
  o.measure = [&](const std::vector<profile::Blueprint>& bps) {
    std::vector<profile::MeasuredBlueprint> out;
    for (const auto& bp : bps) {
      const int64_t n = kept_blocks(bp);
      const double v = n == 4 ? 1.0 : n == 3 ? 0.82 : 0.6;
      out.push_back({v, v, {v}});
    }
    return out;
  };
  const FitCandidate same{"depth_only", [three](const search::Budget&) { return three; }, true};
  search::Budget b;
  b.latency_ms = 0.8 * fx.dense_ms();
  fx.mb.fraction = 0.8;
  const FitResult by_share = fit_to_measured_budget(fx.cc, b, fx.mb, {same}, o);
  EXPECT_TRUE(by_share.record["candidates"]["depth_only"].contains("dropped"));  // 0.82 > 0.8
  fx.mb.limit_model = limit_model;
  const FitResult by_model = fit_to_measured_budget(fx.cc, b, fx.mb, {same}, o);
  ASSERT_TRUE(by_model.record["candidates"]["depth_only"].contains("kept"));
  EXPECT_DOUBLE_EQ(by_model.record["candidates"]["depth_only"]["kept"].get<double>(), 0.8);
}

// A candidate of the original's own shape measures exactly 1x, however noisy the rounds: the
// reference is built as the search stage builds it (dense_layer_specs), the candidate from the space.
TEST(MeasuredFit, TheOriginalsOwnShapeIsNeverWithinABudgetBelowIt) {
  Fixture fx(1.0);
  fx.mb.reference = profile::Blueprint{fx.c, model::dense_layer_specs(fx.c)};
  fx.mb.fraction = 0.95;
  MeasuredFitOptions o = fx.options(2);
  int64_t calls = 0;
  o.measure = [&](const std::vector<profile::Blueprint>& bps) {
    ++calls;
    std::vector<profile::MeasuredBlueprint> out;
    for (size_t i = 0; i < bps.size(); ++i) {
      const double v = i == 0 ? 1.0 : 0.93;  // a slow spell on the reference's fastest round
      out.push_back({v, v, {v}});
    }
    return out;
  };
  const search::Arch full = search::largest_arch(fx.space);
  search::Budget b;
  b.latency_ms = 0.95 * fx.dense_ms();
  const FitResult r =
      fit_to_measured_budget(fx.cc, b, fx.mb, {{"depth_only", [full](const search::Budget&) { return full; }, true}}, o);
  EXPECT_EQ(calls, 1);
  EXPECT_DOUBLE_EQ(r.record["candidates"]["depth_only"]["steps"][0]["measured"].get<double>(), 1.0);
  EXPECT_TRUE(r.record["candidates"]["depth_only"].contains("dropped"));
}

TEST(MeasuredFit, AnAbsoluteBudgetIsHeldInMilliseconds) {
  Fixture fx(2.2);
  search::Budget b;
  b.latency_ms = 0.7 * fx.true_ms(fx.mb.reference);  // fraction 0: milliseconds as measured
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {fx.derived()}, fx.options(3));
  ASSERT_EQ(r.kept.size(), 1u);
  auto [ac, as] = search::arch_specs(fx.c, fx.space, r.kept[0].arch, fx.rank);
  EXPECT_LE(fx.true_ms({ac, as}), b.latency_ms);
  EXPECT_EQ(r.record["unit"], "ms");
}


// The table says even one block in w8a16 costs more than the table budget; the target runs w8a16 at
// 0.3x of the table, and one block measures within the budget. The generator is asked again at a
// raised table budget instead of being dropped (the H100 runs ref-17m's one-block models 1.4x
// faster than its table says).
TEST(MeasuredFit, AGeneratorTheTableCallsInfeasibleIsAskedAtARaisedTableBudget) {
  Fixture fx(0.3);
  const search::Arch one = fx.depth_arch(0, "w8a16");  // one block
  const double t1 = search::arch_cost(fx.cc, one).latency_ms;
  search::Budget b;
  b.latency_ms = 0.9 * t1;
  fx.mb.fraction = 1.01 * fx.true_ratio(one);
  const FitCandidate w8{"depth_w8a16", [&](const search::Budget& x) { return search::depth_only_arch(fx.cc, x, "w8a16"); },
                        false};
  MeasuredFitOptions o = fx.options(2);
  o.max_raise = 1;  // the test can fail: without the raise the generator is dropped
  const FitResult dropped = fit_to_measured_budget(fx.cc, b, fx.mb, {w8, fx.derived()}, o);
  EXPECT_NE(dropped.record["candidates"]["depth_w8a16"].value("dropped", "").find("even 1 blocks"), std::string::npos);
  o.max_raise = 2;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {w8, fx.derived()}, o);
  const Json& rec = r.record["candidates"]["depth_w8a16"];
  ASSERT_TRUE(rec.contains("kept")) << rec.dump();
  EXPECT_DOUBLE_EQ(rec["kept"].get<double>(), fx.true_ratio(one));
  EXPECT_GE(rec["raised_to_ms"].get<double>(), t1);
  EXPECT_LE(rec["raised_to_ms"].get<double>(), 1.01 * t1);  // the least raise that gives an architecture
  bool found = false;
  for (const search::Candidate& c : r.kept) found = found || (c.name == "depth_w8a16" && c.arch.depth == 0);
  EXPECT_TRUE(found);
}

// Two blocks measure less than one block (the table says twice the cost), three blocks 0.70 of the
// original; the limit is 0.6. Both smaller models are measured within it: the fit keeps the one of the
// larger table budget (two blocks, which the generator prefers), not the larger measurement.
TEST(MeasuredFit, OfTheArchitecturesWithinTheBudgetTheOneOfTheLargestTableBudgetIsKept) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.6;
  const double t1 = search::arch_cost(fx.cc, fx.depth_arch(0)).latency_ms;
  const double t2 = search::arch_cost(fx.cc, fx.depth_arch(1)).latency_ms;
  const double t3 = search::arch_cost(fx.cc, fx.depth_arch(2)).latency_ms;
  // One block's measure aims the secant into the two-block range of table budgets.
  const double target = std::min(1.02 * t2, (t2 + t3) / 2), now = 1.2 * t1;
  ASSERT_LT(now, t2);  // the first table budget gives one block
  ASSERT_LT(target, 2 * now);  // within the secant's 2x step
  const double one_block = 0.985 * 0.6 * t1 / target;
  ASSERT_LT(one_block, 0.97 * 0.6);  // not yet within the window: the fit goes on
  const double two_blocks = 0.85 * one_block;  // measures less than one block
  MeasuredFitOptions o = fx.options(4);
  o.measure = [&](const std::vector<profile::Blueprint>& bps) {
    std::vector<profile::MeasuredBlueprint> out;
    for (const auto& bp : bps) {
      const int64_t n = kept_blocks(bp);
      const double v = n == 4 ? 1.0 : n == 3 ? 0.70 : n == 2 ? two_blocks : one_block;
      out.push_back({v, v, {v}});
    }
    return out;
  };
  search::Budget b;
  b.latency_ms = now;
  const FitCandidate depth{"depth_only", [&](const search::Budget& x) { return search::depth_only_arch(fx.cc, x); },
                           false};
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {depth}, o);
  const Json& rec = r.record["candidates"]["depth_only"];
  ASSERT_GE(rec["steps"].size(), 2u);
  EXPECT_DOUBLE_EQ(rec["steps"][0]["measured"].get<double>(), one_block);  // within, and the larger measurement
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].arch.depth, 1);
  EXPECT_DOUBLE_EQ(rec["kept"].get<double>(), two_blocks);
}

// A few rounds only ever read slower: a candidate measured 1 % over the limit is timed again in
// more rounds, and the fastest round of all of them decides.
TEST(MeasuredFit, ACandidateJustOverTheLimitIsTimedAgainInMoreRounds) {
  Fixture fx(1.0);
  fx.mb.fraction = 0.6;
  const search::Arch three = fx.depth_arch(2);
  const FitCandidate fixed{"dnas", [three](const search::Budget&) { return three; }, true};
  search::Budget b;
  b.latency_ms = 0.6 * fx.dense_ms();
  int calls = 0;
  MeasuredFitOptions o = fx.options(2);
  o.reference_instances = 1;  // the original is the first model timed
  o.measure = [&](const std::vector<profile::Blueprint>& bps) {
    ++calls;
    std::vector<profile::MeasuredBlueprint> out;
    for (size_t i = 0; i < bps.size(); ++i) {
      const double v = i == 0 ? 1.0 : calls == 1 ? 0.606 : 0.598;
      out.push_back({v, v, {v}});
    }
    return out;
  };
  o.confirm_rounds = 0;  // the test can fail: without the second timing it is over the limit
  const FitResult over = fit_to_measured_budget(fx.cc, b, fx.mb, {fixed}, o);
  EXPECT_TRUE(over.record["candidates"]["dnas"].contains("dropped"));
  EXPECT_EQ(calls, 1);
  calls = 0;
  o.confirm_rounds = 20;
  const FitResult r = fit_to_measured_budget(fx.cc, b, fx.mb, {fixed}, o);
  EXPECT_EQ(calls, 2);
  const Json& rec = r.record["candidates"]["dnas"];
  ASSERT_TRUE(rec.contains("kept")) << rec.dump();
  EXPECT_DOUBLE_EQ(rec["kept"].get<double>(), 0.598);
  EXPECT_EQ(rec["steps"][0]["confirmed_in_rounds"].get<int>(), 20);
  // 4 % over is over: not timed again.
  calls = 0;
  o.measure = [&](const std::vector<profile::Blueprint>& bps) {
    ++calls;
    std::vector<profile::MeasuredBlueprint> out;
    for (size_t i = 0; i < bps.size(); ++i) {
      const double v = i == 0 ? 1.0 : 0.625;
      out.push_back({v, v, {v}});
    }
    return out;
  };
  const FitResult far = fit_to_measured_budget(fx.cc, b, fx.mb, {fixed}, o);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(far.record["candidates"]["dnas"].contains("dropped"));
}

TEST(MeasuredFit, UniformFormatsAndDepthInAFormat) {
  Fixture fx(1.0);
  EXPECT_EQ(search::uniform_formats(fx.space), std::vector<std::string>{"w8a16"});
  search::Budget b;
  b.latency_ms = 0.7 * fx.dense_ms();
  const search::Arch a = search::depth_only_arch(fx.cc, b, "w8a16");
  for (size_t l = 0; l < fx.space.layers.size(); ++l) {
    for (int k = 0; k < search::kNumFormatSlots; ++k) {
      EXPECT_EQ(fx.space.layers[l].formats[k][static_cast<size_t>(a.formats[l][k])], "w8a16");
    }
  }
  EXPECT_LE(search::arch_cost(fx.cc, a).latency_ms, b.latency_ms);
  // w8a16 halves the linears' cost in this table: more blocks fit than in bf16.
  EXPECT_GT(a.depth, search::depth_only_arch(fx.cc, b).depth);
}

}  // namespace
}  // namespace jointnas::pipeline
