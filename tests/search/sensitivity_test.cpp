// Sensitivity scores against an independent KL computed from extracted models, the held-out split,
// recovery with early stopping, and the candidate portfolio (issue 22).
#include <algorithm>
#include <cmath>
#include <random>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/search/cost.h"
#include "jointnas/search/decisions.h"
#include "jointnas/search/heldout.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/recovery.h"
#include "jointnas/search/sensitivity.h"
#include "product_table.h"
#include "tiny_llama.h"

namespace jointnas::search {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 101;
  c.hidden_size = 128;
  c.intermediate_size = 128;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 64;
  return c;
}

constexpr const char* kSpace = R"(
hidden: [64, 128]
depth: [2, 3]
multiple_of: 32
layers:
  heads: [1, 2]
  head_dim: [16, 32]
  intermediate: [64, 128]
formats: [bf16, w8a16]
)";

std::vector<int64_t> random_tokens(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> u(0, 100);
  std::vector<int64_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = u(rng);
  return t;
}

// Mean KL(original || model) over the windows' predictions, from two plain runtime models: an
// independent path (LlamaModel, not the supernet; log_softmax in the test).
double reference_kl(const model::LlamaModel& orig, const model::LlamaModel& m, const at::Tensor& windows) {
  const int64_t T = windows.size(1);
  const at::Tensor zt = orig.forward(windows).to(at::kDouble).narrow(1, 0, T - 1);
  const at::Tensor zs = m.forward(windows).to(at::kDouble).narrow(1, 0, T - 1);
  const at::Tensor lt = at::log_softmax(zt, -1), ls = at::log_softmax(zs, -1);
  return (lt.exp() * (lt - ls)).sum(-1).mean().item<double>();
}

struct Fixture {
  model::LlamaConfig c = config();
  model::Checkpoint ck = testing::random_llama_checkpoint(c, 21, 0.05, 1.0);
  SearchSpace space = SearchSpace::from_yaml(kSpace, c, "<test>", "cpu");
  std::vector<int64_t> rank = {2, 0, 1};
  SupernetOptions so;
  Fixture() { so.dtype = at::kDouble; }
};

// Every entry is KL(one change) - KL(reference) of the extracted model, measured independently; the
// reference's own choices score 0, and a single change's architecture scores its own measured KL.
// Both sides run in fp64 (RoPE tables in fp32 on both sides, as LlamaModel keeps them): the KLs here
// are ~1e-3..1, and summing 4 x 11 predictions in another order differs by ~1e-15 relative.
TEST(Sensitivity, EveryScoreIsTheMeasuredKlIncreaseOfOneDecision) {
  Fixture fx;
  const Supernet net(fx.ck, fx.space, fx.rank, fx.so, 1);
  const std::vector<int64_t> tokens = random_tokens(48, 3);
  const HeldoutSet held(tokens, 12, 0, 3);
  SensitivityOptions o;
  int64_t calls = 0;
  const ScoreTable t = measure_sensitivity(net, held, o, [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(total, sensitivity_evaluations(fx.space, o));
  });
  EXPECT_EQ(calls, sensitivity_evaluations(fx.space, o));
  ASSERT_NO_THROW(t.check(fx.space, "<test>"));
  ASSERT_EQ(t.layers.size(), 2u);

  model::RuntimeOptions ro;
  ro.dtype = at::kDouble;
  const at::Tensor windows = at::tensor(tokens, at::kLong).view({4, 12});
  const Arch ref = largest_arch(fx.space);
  const model::LlamaModel orig = net.extract(ref, ro);
  auto kl = [&](const Arch& a) { return reference_kl(orig, net.extract(a, ro), windows); };
  const double k_ref = kl(ref);
  EXPECT_NEAR(k_ref, 0.0, 1e-12);
  constexpr double kTol = 1e-9;
  // Global: hidden 128 with depth 2 (measured jointly).
  Arch g = ref;
  g.hidden = 0;
  g.depth = 0;
  EXPECT_NEAR(t.global[0][0], kl(g) - k_ref, kTol);
  EXPECT_EQ(t.global[1][1], 0.0);
  // Per layer at hidden 128: relative to the reference at hidden 128.
  Arch h = ref;
  h.hidden = 0;
  const double k_h = kl(h);
  Arch a = h;
  a.kv_groups[2] = 0;
  a.head_dims[2] = 0;
  EXPECT_NEAR(t.layers[0][2].attention[0], kl(a) - k_h, kTol);
  a = h;
  a.formats[1][3] = 1;
  EXPECT_NEAR(t.layers[0][1].formats[3][1], kl(a) - k_h, kTol);
  EXPECT_GT(t.layers[0][1].formats[3][1], 0.0);
  a = ref;
  a.intermediate[0] = 0;
  EXPECT_NEAR(t.layers[1][0].intermediate[0], kl(a) - k_ref, kTol);
  EXPECT_NEAR(t.score(fx.space, a, fx.rank), kl(a) - k_ref, kTol);
  EXPECT_EQ(t.layers[1][0].intermediate[1], 0.0);
  EXPECT_EQ(t.layers[1][0].formats[0][0], 0.0);
  // One row for every hidden size without per_hidden.
  o.per_hidden = false;
  const ScoreTable one = measure_sensitivity(net, held, o);
  ASSERT_EQ(one.layers.size(), 1u);
  EXPECT_NEAR(one.layers[0][0].intermediate[0], t.layers[1][0].intermediate[0], 1e-15);
}

// Dropping the block of rank L-1 alone is the global entry of depth L-1 at the largest hidden size.
TEST(Sensitivity, BlockDropsAreSingleBlockDepthScores) {
  Fixture fx;
  const std::vector<int64_t> tokens = random_tokens(48, 3);
  const HeldoutSet held(tokens, 12, 0, 4);
  const std::vector<double> drops = measure_block_drops(fx.ck, fx.space, held, fx.so);
  ASSERT_EQ(drops.size(), 3u);
  const Supernet net(fx.ck, fx.space, fx.rank, fx.so, 1);
  Arch a = largest_arch(fx.space);
  const double k_ref = held.evaluate(net, net.one_hot(a)).kl;
  a.depth = 0;  // 2 blocks: drops layer 0, of rank 2
  EXPECT_NEAR(drops[0], held.evaluate(net, net.one_hot(a)).kl - k_ref, 1e-12);
  for (double d : drops) EXPECT_GT(d, 0.0);
  EXPECT_EQ(rank_by_drop({0.5, 2.0, 0.1, 2.0}), (std::vector<int64_t>{2, 0, 3, 1}));
  SearchSpace shallow = fx.space;
  shallow.depth = {3};
  EXPECT_THROW(measure_block_drops(fx.ck, shallow, held, fx.so), ConfigError);
}

TEST(Heldout, SplitSpreadsTheWindowsAndChecksItsSize) {
  std::vector<int64_t> s(105);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<int64_t>(i);
  const TokenSplit sp = split_heldout(s, 3, 10, 5);
  EXPECT_EQ(sp.train.size(), 75u);
  ASSERT_EQ(sp.heldout.size(), 30u);
  // Ten windows, three held out, each in the middle of its third: windows 1, 5 and 8.
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(sp.heldout[i], 10 + static_cast<int64_t>(i));
    EXPECT_EQ(sp.heldout[10 + i], 50 + static_cast<int64_t>(i));
    EXPECT_EQ(sp.heldout[20 + i], 80 + static_cast<int64_t>(i));
  }
  // Training: every other token, in order, the 5-token remainder included; none held out.
  std::vector<int64_t> rest;
  for (int64_t t = 0; t < 105; ++t) {
    if (!((t >= 10 && t < 20) || (t >= 50 && t < 60) || (t >= 80 && t < 90))) rest.push_back(t);
  }
  EXPECT_EQ(sp.train, rest);
  EXPECT_EQ(split_heldout(s, 10, 10, 0).train.size(), 5u);  // every whole window held out
  EXPECT_THROW(split_heldout(s, 3, 10, 8), ConfigError);
  EXPECT_THROW(split_heldout(s, 0, 10, 1), ConfigError);
  EXPECT_THROW(HeldoutSet(std::vector<int64_t>(5, 1), 10, 0, 1), ConfigError);
}

// Early stopping returns the adapters of the best held-out evaluation: the model at the end scores
// exactly that, and no evaluation on the way scored better. A learning rate far too large makes the
// held-out KL rise, so patience stops the finetune early.
TEST(Recovery, EarlyStoppingRestoresTheBestAdapters) {
  Fixture fx;
  Arch a = largest_arch(fx.space);
  a.intermediate = {0, 0, 0};
  a.hidden = 0;
  fx.so.lora_rank = 4;
  const std::vector<int64_t> train = random_tokens(400, 5), heldtok = random_tokens(48, 6);
  const HeldoutSet held(heldtok, 12, 0, 4);
  FinetuneOptions fo;
  fo.steps = 40;
  fo.batch = 2;
  fo.seq_len = 12;
  fo.lr = 0.3;
  EarlyStopping es;
  es.eval_every = 2;
  es.patience = 2;
  Supernet net(fx.ck, restrict_to(fx.space, a), fx.rank, fx.so, 1);
  LocalProcessGroup pg;
  const RecoveryResult r = run_recovery(net, train, held, fo, es, pg, {});
  ASSERT_GE(r.curve.size(), 2u);
  EXPECT_LT(r.finetune.steps, fo.steps) << "the held-out KL should stop improving at lr 0.3";
  for (const RecoveryPoint& p : r.curve) EXPECT_GE(p.score.kl, r.best.kl);
  const HeldoutScore now = held.evaluate(net, net.one_hot(first_arch(net.space())));
  EXPECT_DOUBLE_EQ(now.kl, r.best.kl);
  EXPECT_EQ(r.curve.front().step, 0);
  EXPECT_EQ(r.to_json()["best_step"], r.best_step);
  fo.after_step = [](int64_t) { return false; };
  EXPECT_THROW(run_recovery(net, train, held, fo, es, pg, {}), ConfigError);
}

// What the portfolio tests share: the fixture's model and space costed by a product table, and two
// architectures of it (a small one and one with every MLP cut).
struct PortfolioFixture {
  Fixture fx;
  profile::Workload w;
  profile::LatencyTable table;
  CostContext cc;
  Arch small, mid;
  PortfolioFixture() {
    w.context = 32;
    table = product_table(fx.c, cost_space(fx.space, fx.c, fx.rank), w);
    cc.config = &fx.c;
    cc.space = &fx.space;
    cc.block_rank = fx.rank;
    cc.table = &table;
    cc.workload = w;
    small = largest_arch(fx.space);
    small.hidden = 0;
    small.depth = 0;
    mid = largest_arch(fx.space);
    mid.intermediate = {0, 0, 0};
  }
};

// The portfolio finetunes each distinct architecture once and returns the lowest held-out KL.
TEST(Portfolio, PicksTheLowestHeldoutKlAndFinetunesEachArchitectureOnce) {
  PortfolioFixture pf;
  Fixture& fx = pf.fx;
  const CostContext& cc = pf.cc;
  const Arch &small = pf.small, &mid = pf.mid;
  const std::vector<Candidate> cands = {{"a", small}, {"b", mid}, {"c", small}};
  PortfolioOptions o;
  o.supernet = fx.so;
  o.supernet.lora_rank = 4;
  o.finetune.steps = 6;
  o.finetune.batch = 2;
  o.finetune.seq_len = 12;
  o.early.eval_every = 3;
  const std::vector<int64_t> train = random_tokens(400, 5), heldtok = random_tokens(48, 6);
  const HeldoutSet held(heldtok, 12, 0, 4);
  int finetunes = 0;
  o.kl_tie = 0;  // the least held-out KL wins (pick_winner's tie: its own test)
  const PortfolioResult p = run_portfolio(fx.ck, cc, cands, train, held, o, [&](const Json& j) {
    if (j.contains("heldout_step") && j["heldout_step"] == 0) ++finetunes;
  });
  EXPECT_EQ(finetunes, 2);
  ASSERT_EQ(p.candidates.size(), 3u);
  EXPECT_EQ(p.candidates[2].same_as, "a");
  EXPECT_EQ(p.candidates[2].recovery.best.kl, p.candidates[0].recovery.best.kl);
  for (const CandidateResult& r : p.candidates) {
    EXPECT_LE(p.candidates[p.best].recovery.best.kl, r.recovery.best.kl);
    EXPECT_LE(r.recovery.best.kl, r.before.kl);
  }
  const Json j = p.to_json(fx.space);
  EXPECT_EQ(j["winner"], p.candidates[p.best].candidate.name);
  EXPECT_NEAR(j["margin_kl"].get<double>(),
              std::abs(p.candidates[0].recovery.best.kl - p.candidates[1].recovery.best.kl), 1e-15);
  EXPECT_THROW(run_portfolio(fx.ck, cc, {}, train, held, o, {}), ConfigError);
}

// The screen: every distinct candidate is finetuned screen_steps first; only the finalists (least
// held-out KL after the screen) get the whole finetune, and theirs is the finetune they get without
// a screen, so the screen can only leave candidates out, never change a finalist's result.
TEST(Portfolio, TheScreenFinetunesOnlyTheFinalistsFully) {
  PortfolioFixture pf;
  Fixture& fx = pf.fx;
  const CostContext& cc = pf.cc;
  const Arch &small = pf.small, &mid = pf.mid;
  const std::vector<Candidate> cands = {{"a", small}, {"b", mid}, {"c", largest_arch(fx.space)}, {"d", mid}};
  PortfolioOptions o;
  o.supernet = fx.so;
  o.supernet.lora_rank = 4;
  o.finetune.steps = 6;
  o.finetune.batch = 2;
  o.finetune.seq_len = 12;
  o.early.eval_every = 3;
  o.kl_tie = 0;
  const std::vector<int64_t> train = random_tokens(400, 5), heldtok = random_tokens(48, 6);
  const HeldoutSet held(heldtok, 12, 0, 4);
  const PortfolioResult all = run_portfolio(fx.ck, cc, cands, train, held, o, {});
  o.finalists = 1;
  o.screen_steps = 2;
  int finetunes = 0;
  const PortfolioResult p = run_portfolio(fx.ck, cc, cands, train, held, o, [&](const Json& j) {
    if (j.contains("heldout_step") && j["heldout_step"] == 0) ++finetunes;
  });
  EXPECT_EQ(finetunes, 3 + 1) << "three distinct architectures screened, one finalist";
  ASSERT_EQ(p.candidates.size(), 4u);
  EXPECT_EQ(p.candidates[3].same_as, "b");
  size_t finalist = 0;
  int finalists = 0;
  for (size_t i = 0; i < 3; ++i) {
    const CandidateResult& r = p.candidates[i];
    ASSERT_GE(r.screen_kl, 0) << r.candidate.name;
    if (r.screened_out) {
      EXPECT_EQ(r.recovery.finetune.steps, 2) << r.candidate.name;
    } else {
      finalist = i;
      ++finalists;
    }
  }
  ASSERT_EQ(finalists, 1);
  for (size_t i = 0; i < 3; ++i) EXPECT_LE(p.candidates[finalist].screen_kl, p.candidates[i].screen_kl);
  EXPECT_EQ(p.best == 3 ? 1 : p.best, finalist);
  EXPECT_DOUBLE_EQ(p.candidates[finalist].recovery.best.kl, all.candidates[finalist].recovery.best.kl);
  EXPECT_EQ(p.candidates[finalist].recovery.finetune.steps, all.candidates[finalist].recovery.finetune.steps);
  const Json j = p.to_json(fx.space);
  EXPECT_EQ(j["winner"], p.candidates[p.best].candidate.name);
  int out = 0;
  for (const Json& c : j["candidates"]) out += c.value("screened_out", false) ? 1 : 0;
  EXPECT_EQ(out, finalist == 1 ? 2 : 3) << j.dump();
  // A candidate marked always_finalist (depth only in the selection) is finetuned fully even when
  // the screen ranks it last.
  size_t worst = finalist;
  for (size_t i = 0; i < 3; ++i) {
    if (p.candidates[i].screen_kl > p.candidates[worst].screen_kl) worst = i;
  }
  ASSERT_NE(worst, finalist);
  std::vector<Candidate> kept = cands;
  kept[worst].always_finalist = true;
  const PortfolioResult q = run_portfolio(fx.ck, cc, kept, train, held, o, {});
  EXPECT_FALSE(q.candidates[worst].screened_out);
  EXPECT_EQ(q.candidates[worst].recovery.finetune.steps, all.candidates[worst].recovery.finetune.steps);
  EXPECT_FALSE(q.candidates[finalist].screened_out);
  // ... also when it is the same architecture as a candidate listed before it (the per-hidden
  // derivation before depth only): that architecture is a finalist.
  std::vector<Candidate> dup = cands;
  dup.push_back({"e", cands[worst].arch});
  dup.back().always_finalist = true;
  const PortfolioResult r2 = run_portfolio(fx.ck, cc, dup, train, held, o, {});
  EXPECT_EQ(r2.candidates.back().same_as, cands[worst].name);
  EXPECT_FALSE(r2.candidates[worst].screened_out);
  EXPECT_FALSE(r2.candidates.back().screened_out);
  // No more distinct architectures than finalists: no screen.
  o.finalists = 3;
  finetunes = 0;
  const PortfolioResult none = run_portfolio(fx.ck, cc, cands, train, held, o, [&](const Json& j) {
    if (j.contains("heldout_step") && j["heldout_step"] == 0) ++finetunes;
  });
  EXPECT_EQ(finetunes, 3);
  for (const CandidateResult& r : none.candidates) EXPECT_FALSE(r.screened_out || r.screen_kl >= 0);
}

// Held-out KLs within the tie (1 %) are decided by the fewest quantized linears of the kept blocks;
// outside it, the least KL wins whatever its formats.
TEST(Portfolio, AKlTieGoesToTheFewestQuantizedLinears) {
  Fixture fx;
  auto cand = [&](const char* name, int64_t format, int64_t depth, double kl) {
    CandidateResult r;
    r.candidate.name = name;
    r.candidate.arch = largest_arch(fx.space);
    r.candidate.arch.depth = depth;
    for (auto& f : r.candidate.arch.formats) f.fill(format);
    r.recovery.best.kl = kl;
    return r;
  };
  // Every linear in w8a16 (index 1) with 0.4 % less KL than the same blocks in bf16: a tie.
  std::vector<CandidateResult> c = {cand("depth_w8a16", 1, 1, 0.6666), cand("depth_only", 0, 1, 0.6695)};
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.01), 1u);
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.0), 0u);  // no tie: the least KL
  // The limit model itself (a matched point's baseline) wins a tie, quantized or not.
  c[0].candidate.is_limit = true;
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.01), 0u);
  c[0].recovery.best.kl = 0.6695 * 1.005;
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.01), 0u);
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.0), 1u);  // no tie: the least KL
  c[0].candidate.is_limit = false;
  // 2 % less KL is not a tie.
  c[0].recovery.best.kl = 0.6695 / 1.02;
  EXPECT_EQ(pick_winner(c, fx.space, fx.rank, 0.01), 0u);
  // Only kept blocks count: w8a16 in the blocks the depth drops is no quantization.
  EXPECT_EQ(quantized_slots(fx.space, fx.rank, cand("x", 1, 1, 0).candidate.arch), 3 * kNumFormatSlots);
  CandidateResult two = cand("x", 0, 0, 0);  // 2 of 3 blocks kept
  const size_t dropped = static_cast<size_t>(std::find(fx.rank.begin(), fx.rank.end(), 2) - fx.rank.begin());
  two.candidate.arch.formats[dropped].fill(1);  // the block the depth order drops first
  EXPECT_EQ(quantized_slots(fx.space, fx.rank, two.candidate.arch), 0);
}

}  // namespace
}  // namespace jointnas::search
