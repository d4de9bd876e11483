// The exact derivation (search/derive.h) against full enumeration of a small space (issue 22,
// acceptance 3), its budget use (acceptance 2), the baselines it builds (depth only, architecture
// only), and the score table it minimises (search/score_table.h).
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"
#include "jointnas/search/cost.h"
#include "jointnas/search/decisions.h"
#include "jointnas/search/derive.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/score_table.h"
#include "product_table.h"

namespace jointnas::search {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 101;
  c.hidden_size = 256;
  c.intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 64;
  return c;
}

// 4 global pairs x 128 choice tuples per layer (4 attention x 2 widths x 2^4 formats): 65,536
// architectures, enumerable in about a second.
constexpr const char* kSpace = R"(
hidden: [128, 256]
depth: [1, 2]
layers:
  heads: [1, 2]
  head_dim: [32, 64]
  intermediate: [128, 256]
formats: [bf16, w8a16]
)";

// Scores with a row per hidden choice. `monotone`: every smaller or quantized choice scores more
// (the pretrained model is best); otherwise uniform random, so that no structure helps the solver.
ScoreTable random_scores(const SearchSpace& s, uint64_t seed, bool monotone) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto value = [&](size_t i, size_t n) { return monotone ? u(rng) * static_cast<double>(n - 1 - i) : u(rng); };
  ScoreTable t;
  t.source = "test";
  for (size_t h = 0; h < s.hidden.size(); ++h) {
    std::vector<double> row;
    for (size_t d = 0; d < s.depth.size(); ++d) {
      row.push_back(monotone ? 2.0 * static_cast<double>(s.hidden.size() - 1 - h) + 3.0 * static_cast<double>(s.depth.size() - 1 - d)
                             : u(rng));
    }
    t.global.push_back(row);
    std::vector<LayerScores> layers;
    for (const LayerChoices& lc : s.layers) {
      LayerScores ls;
      const size_t na = lc.kv_groups.size() * lc.head_dims.size();
      for (size_t i = 0; i < na; ++i) ls.attention.push_back(value(i, na));
      for (size_t i = 0; i < lc.intermediate.size(); ++i) ls.intermediate.push_back(value(i, lc.intermediate.size()));
      for (int k = 0; k < kNumFormatSlots; ++k) {
        // Format 0 is bf16 in this space.
        for (size_t i = 0; i < lc.formats[k].size(); ++i) ls.formats[k].push_back(monotone ? (i == 0 ? 0.0 : 0.1 * u(rng)) : u(rng));
      }
      layers.push_back(ls);
    }
    t.layers.push_back(layers);
  }
  return t;
}

struct Fixture {
  model::LlamaConfig c = config();
  SearchSpace space = SearchSpace::from_yaml(kSpace, c, "<test>", "cpu");
  std::vector<int64_t> rank = {1, 0};
  profile::Workload w;
  profile::LatencyTable table;
  CostContext cc;
  struct Row {
    Arch arch;
    profile::Cost cost;
  };
  std::vector<Row> all;  // every architecture (a dropped layer's choices enumerated too)

  Fixture() {
    w.context = 32;
    table = product_table(c, cost_space(space, c, rank), w);
    // A calibration with every term, so that the derivation's additive model is tested with it.
    profile::LatencyTable::Calibration cal;
    cal.scale = 1.3;
    cal.per_block_ms = 0.02;
    cal.constant_ms = 0.05;
    cal.memory_bytes = 1000;
    table.calibration[w.name()] = cal;
    cc.config = &c;
    cc.space = &space;
    cc.block_rank = rank;
    cc.table = &table;
    cc.workload = w;
    Arch a = largest_arch(space);
    std::vector<Decision> ds = decisions(space, a);
    std::function<void(size_t)> rec = [&](size_t i) {
      if (i == ds.size()) {
        all.push_back({a, arch_cost(cc, a)});
        return;
      }
      for (int64_t v = 0; v < ds[i].choices; ++v) {
        *ds[i].index = v;
        rec(i + 1);
      }
    };
    rec(0);
  }
  profile::Cost dense() const { return arch_cost(cc, largest_arch(space)); }
  profile::Cost smallest() const { return arch_cost(cc, smallest_arch(space, c)); }
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// By enumeration: the best score within the budget, and the least budget use of an architecture
// with a better score.
std::pair<double, double> brute(const Fixture& fx, const ScoreTable& t, const Budget& b) {
  double best = kInf;
  for (const auto& r : fx.all) {
    if (budget_excess(r.cost, b) == 0.0) best = std::min(best, t.score(fx.space, r.arch, fx.rank));
  }
  double next = kInf;
  for (const auto& r : fx.all) {
    if (t.score(fx.space, r.arch, fx.rank) < best) next = std::min(next, budget_use(r.cost, b).first);
  }
  return {best, next};
}

// The derivation's answer is the enumeration's, for random scores and every kind of budget.
// Scores are sums of at most 11 terms in [0, 1): fp64 sums in another order differ by < 1e-14.
TEST(Derive, NoArchitectureOfASmallSpaceScoresBetterWithinTheBudget) {
  Fixture fx;
  ASSERT_EQ(fx.all.size(), 65536u);
  const profile::Cost big = fx.dense(), small = fx.smallest();
  std::vector<Budget> budgets;
  for (double f : {0.45, 0.6, 0.75, 0.9}) {
    Budget b;
    b.latency_ms = f * big.latency_ms;
    budgets.push_back(b);
  }
  Budget p;
  p.params = 0.5 * static_cast<double>(big.params);
  budgets.push_back(p);
  Budget m;
  m.memory_bytes = 0.5 * static_cast<double>(small.peak_bytes() + big.peak_bytes());
  budgets.push_back(m);
  Budget all3;
  all3.latency_ms = 0.7 * big.latency_ms;
  all3.memory_bytes = 0.8 * static_cast<double>(big.peak_bytes());
  all3.params = 0.6 * static_cast<double>(big.params);
  budgets.push_back(all3);
  for (uint64_t seed : {1, 2}) {
    const ScoreTable t = random_scores(fx.space, seed, false);
    for (const Budget& b : budgets) {
      SCOPED_TRACE(b.to_json().dump() + " seed " + std::to_string(seed));
      const auto [best, next_use] = brute(fx, t, b);
      ASSERT_LT(best, kInf);
      const Derivation d = derive(fx.cc, b, t);
      EXPECT_EQ(d.gap_bound, 0.0);
      EXPECT_NEAR(d.score, best, 1e-12);
      EXPECT_NEAR(t.score(fx.space, d.arch, fx.rank), d.score, 1e-12);
      EXPECT_EQ(budget_excess(d.predicted, b), 0.0);
      // The next larger architecture is named whenever one within relax x the budget scores better.
      const DeriveOptions o;
      EXPECT_EQ(d.has_next, next_use <= o.relax);
      if (d.has_next) {
        EXPECT_NEAR(d.next_budget_use, next_use, 1e-12);
        EXPECT_GT(d.next_budget_use, 1.0);
        EXPECT_LT(d.next_score, d.score);
      }
    }
  }
}

// Acceptance 2: with scores that prefer larger choices, the derivation spends the budget: its
// predicted cost is at least 97 % of the binding budget, or it names the next larger architecture
// (which misses the budget and scores better).
TEST(Derive, SpendsTheBudgetOrNamesTheNextLargerArchitecture) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 7, true);
  const double dense = fx.dense().latency_ms;
  int high_use = 0, named = 0;
  for (double f = 0.40; f < 0.96; f += 0.05) {
    Budget b;
    b.latency_ms = f * dense;
    SCOPED_TRACE(f);
    const Derivation d = derive(fx.cc, b, t);
    EXPECT_EQ(d.binding, "latency");
    EXPECT_LE(d.budget_use, 1.0);
    if (d.budget_use >= 0.97) {
      ++high_use;
    } else {
      ASSERT_TRUE(d.has_next) << "uses " << d.budget_use << " of the budget and names no larger architecture";
      EXPECT_GT(d.next_predicted.latency_ms, b.latency_ms);
      EXPECT_LT(d.next_score, d.score);
      ++named;
    }
  }
  EXPECT_GT(high_use, 0);
  // Growing: from a budget that the smallest architecture meets with room, the derivation returns a
  // larger one (repair_to_budget would leave the smallest as it is).
  Budget b;
  b.latency_ms = 0.9 * dense;
  const Derivation d = derive(fx.cc, b, t);
  EXPECT_GT(d.predicted.latency_ms, 2 * fx.smallest().latency_ms);
}

// Epsilon-thinning of large fronts: the reported gap bounds the distance to the optimum.
TEST(Derive, ThinnedFrontsReportAGapThatBoundsTheLoss) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 3, false);
  Budget b;
  b.latency_ms = 0.6 * fx.dense().latency_ms;  // one cost: thinning can always reach the cap
  DeriveOptions o;
  o.max_front = 3;
  const Derivation d = derive(fx.cc, b, t, o);
  const double best = brute(fx, t, b).first;
  EXPECT_GT(d.gap_bound, 0.0);
  EXPECT_LE(d.largest_front, 3);
  EXPECT_GE(d.score, best - 1e-12);
  EXPECT_LE(d.score, best + d.gap_bound + 1e-12);
  EXPECT_EQ(budget_excess(d.predicted, b), 0.0);
}

TEST(Derive, UserErrorsAreConfigErrors) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 1, false);
  Budget none;
  EXPECT_THROW(derive(fx.cc, none, t), ConfigError);
  Budget tiny;
  tiny.latency_ms = 0.5 * fx.smallest().latency_ms;
  try {
    derive(fx.cc, tiny, t);
    FAIL() << "a budget below every architecture must throw";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no architecture"), std::string::npos) << e.what();
  }
  Budget ok;
  ok.latency_ms = fx.dense().latency_ms;
  DeriveOptions bad;
  bad.relax = 0.9;
  EXPECT_THROW(derive(fx.cc, ok, t, bad), ConfigError);
  ScoreTable wrong = t;
  wrong.layers[0][1].intermediate.pop_back();
  EXPECT_THROW(derive(fx.cc, ok, wrong), ConfigError);
  wrong = t;
  wrong.global.pop_back();
  EXPECT_THROW(derive(fx.cc, ok, wrong), ConfigError);
  EXPECT_THROW(depth_only_arch(fx.cc, tiny), ConfigError);
}

// Restricted to one hidden size (the portfolio's per-hidden candidates), the derivation is the
// enumeration's best among that hidden size's architectures; a hidden size with none within the
// budget, or an index out of range, is a ConfigError.
TEST(Derive, AtOneHiddenSizeItIsTheBestOfThatHiddenSize) {
  Fixture fx;
  ASSERT_GE(fx.space.hidden.size(), 2u);
  const ScoreTable t = random_scores(fx.space, 3, false);
  for (double f : {0.5, 0.8}) {
    Budget b;
    b.latency_ms = f * fx.dense().latency_ms;
    for (int64_t h = 0; h < static_cast<int64_t>(fx.space.hidden.size()); ++h) {
      SCOPED_TRACE(fmt::format("budget {} hidden {}", f, h));
      double best = kInf;
      for (const auto& r : fx.all) {
        if (r.arch.hidden == h && budget_excess(r.cost, b) == 0.0) best = std::min(best, t.score(fx.space, r.arch, fx.rank));
      }
      DeriveOptions o;
      o.hidden = h;
      if (best == kInf) {
        EXPECT_THROW(derive(fx.cc, b, t, o), ConfigError);
        continue;
      }
      const Derivation d = derive(fx.cc, b, t, o);
      EXPECT_EQ(d.arch.hidden, h);
      EXPECT_NEAR(d.score, best, 1e-12);
      EXPECT_EQ(budget_excess(d.predicted, b), 0.0);
    }
  }
  DeriveOptions out;
  out.hidden = static_cast<int64_t>(fx.space.hidden.size());
  Budget b;
  b.latency_ms = fx.dense().latency_ms;
  EXPECT_THROW(derive(fx.cc, b, t, out), ConfigError);
}

// The baselines: depth only is the deepest bf16 model within the budget; architecture only is the
// best bf16 architecture by enumeration.
TEST(Derive, BaselinesAreTheBestOfTheirSubspaces) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 5, true);
  Budget b;
  b.latency_ms = 0.7 * fx.dense().latency_ms;
  const Arch d = depth_only_arch(fx.cc, b);
  const Arch big = largest_arch(fx.space);
  EXPECT_EQ(d.hidden, big.hidden);
  EXPECT_EQ(d.intermediate, big.intermediate);
  EXPECT_EQ(budget_excess(arch_cost(fx.cc, d), b), 0.0);
  if (d.depth + 1 < static_cast<int64_t>(fx.space.depth.size())) {
    Arch deeper = d;
    ++deeper.depth;
    EXPECT_GT(budget_excess(arch_cost(fx.cc, deeper), b), 0.0);
  }
  const Arch a = arch_only_arch(fx.cc, b, t);
  double best = kInf;
  for (const auto& r : fx.all) {
    bool bf16 = true;
    for (const auto& f : r.arch.formats) bf16 = bf16 && f == std::array<int64_t, kNumFormatSlots>{0, 0, 0, 0};
    if (bf16 && budget_excess(r.cost, b) == 0.0) best = std::min(best, t.score(fx.space, r.arch, fx.rank));
  }
  EXPECT_NEAR(t.score(fx.space, a, fx.rank), best, 1e-12);
  for (const auto& f : a.formats) EXPECT_EQ(f, (std::array<int64_t, kNumFormatSlots>{0, 0, 0, 0}));
}

// Growing an architecture: by enumeration, the best score within the budget among the
// architectures that take every kept decision of the start at least as large (formats of at least
// as many weight bits); never worse than the start, and within the budget.
TEST(Derive, GrowSpendsTheLeftBudgetOnLargerChoicesOnly) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 9, true);
  Budget b;
  b.latency_ms = 0.8 * fx.dense().latency_ms;
  const Arch start = smallest_arch(fx.space, fx.c);
  const Arch g = grow_arch(fx.cc, b, t, start);
  EXPECT_EQ(budget_excess(arch_cost(fx.cc, g), b), 0.0);
  EXPECT_LE(t.score(fx.space, g, fx.rank), t.score(fx.space, start, fx.rank));
  auto bits = [&](size_t l, int k, int64_t i) {
    return quant::find_format(fx.space.layers[l].formats[k][static_cast<size_t>(i)]).weight_bits;
  };
  auto dominates = [&](const Arch& a) {
    const SearchSpace& s = fx.space;
    if (s.hidden[a.hidden] < s.hidden[start.hidden] || s.depth[a.depth] < s.depth[start.depth]) return false;
    for (size_t l = 0; l < s.layers.size(); ++l) {
      if (!block_kept(fx.rank, static_cast<int64_t>(l), s.depth[start.depth])) continue;
      const LayerChoices& lc = s.layers[l];
      if (lc.kv_groups[a.kv_groups[l]] < lc.kv_groups[start.kv_groups[l]] ||
          lc.head_dims[a.head_dims[l]] < lc.head_dims[start.head_dims[l]] ||
          lc.intermediate[a.intermediate[l]] < lc.intermediate[start.intermediate[l]]) {
        return false;
      }
      for (int k = 0; k < kNumFormatSlots; ++k) {
        if (bits(l, k, a.formats[l][k]) < bits(l, k, start.formats[l][k])) return false;
      }
    }
    return true;
  };
  EXPECT_TRUE(dominates(g));
  double best = kInf;
  for (const auto& r : fx.all) {
    if (dominates(r.arch) && budget_excess(r.cost, b) == 0.0) best = std::min(best, t.score(fx.space, r.arch, fx.rank));
  }
  EXPECT_NEAR(t.score(fx.space, g, fx.rank), best, 1e-12);
  EXPECT_LT(best, t.score(fx.space, start, fx.rank));  // the budget leaves room: the test tests something
  // An architecture over the budget is returned as it is.
  Budget tiny;
  tiny.latency_ms = 1e-9;
  EXPECT_EQ(grow_arch(fx.cc, tiny, t, start).to_json(fx.space), start.to_json(fx.space));
}

// A table whose calibration predicts negative latencies (an old or hand-edited table): the cheapest
// architecture is still found, and the search's coordinate descent ends (it used to trade equal
// negative costs forever).
TEST(Derive, FastestArchitectureEndsOnNegativePredictions) {
  Fixture fx;
  fx.table.calibration[fx.w.name()].constant_ms = -100.0;
  const Arch a = fastest_arch(fx.cc);
  double best = kInf;
  for (const auto& r : fx.all) best = std::min(best, arch_cost(fx.cc, r.arch).latency_ms);
  EXPECT_NEAR(arch_cost(fx.cc, a).latency_ms, best, 1e-9);
}

TEST(ScoreTable, JsonRoundTripAndErrors) {
  Fixture fx;
  const ScoreTable t = random_scores(fx.space, 1, false);
  const ScoreTable r = ScoreTable::from_json(Json::parse(t.to_json().dump()), "<test>");
  EXPECT_EQ(r.to_json(), t.to_json());
  EXPECT_NO_THROW(r.check(fx.space, "<test>"));
  EXPECT_THROW(ScoreTable::from_json(Json{{"format", "other"}}, "<test>"), IoError);
  Json j = t.to_json();
  j["global"][0][0] = "x";
  EXPECT_THROW(ScoreTable::from_json(j, "<test>"), IoError);
  j = t.to_json();
  j["layers"][0][0].erase("formats");
  EXPECT_THROW(ScoreTable::from_json(j, "<test>"), IoError);
}

// -log p of the logits: the score of an architecture is minus the sum of its decisions' log-probs
// (dropped layers' decisions excluded).
TEST(ScoreTable, LogProbScoresAreMinusTheArchitecturesLogProbability) {
  Fixture fx;
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(-3.0, 0.0);
  std::map<std::string, std::vector<double>> lp;
  Arch a = largest_arch(fx.space);
  for (const Decision& d : decisions(fx.space, a)) {
    for (int64_t i = 0; i < d.choices; ++i) lp[d.name].push_back(u(rng));
  }
  const ScoreTable t = score_table_from_log_probs(fx.space, lp);
  a.hidden = 0;
  a.depth = 0;  // keeps layer 1 only (rank 0)
  a.kv_groups = {1, 0};
  a.head_dims = {0, 1};
  a.intermediate = {1, 0};
  a.formats = {{0, 1, 0, 1}, {1, 1, 0, 0}};
  double want = -(lp["arch_hidden"][0] + lp["arch_depth"][0]);
  want -= lp["layers.1.arch_kv_groups"][0] + lp["layers.1.arch_head_dim"][1] + lp["layers.1.arch_intermediate"][0];
  want -= lp["layers.1.arch_format_qkv"][1] + lp["layers.1.arch_format_o"][1] + lp["layers.1.arch_format_gate_up"][0] +
          lp["layers.1.arch_format_down"][0];
  EXPECT_NEAR(t.score(fx.space, a, fx.rank), want, 1e-12);
  lp["arch_hidden"].push_back(0.0);
  EXPECT_THROW(score_table_from_log_probs(fx.space, lp), ConfigError);
}

TEST(ScoreTable, SpearmanMatchesHandComputedValues) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // y ranks {1, 2, 3.5, 5, 3.5}: sum dx dy = 8, sum dx^2 = 10, sum dy^2 = 9.5.
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8.0 / std::sqrt(95.0), 1e-15);
  EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1, 2}, {1, 2, 3})));
}

}  // namespace
}  // namespace jointnas::search
