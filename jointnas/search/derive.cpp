#include "jointnas/search/derive.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::search {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
enum Dim { kLatency = 0, kParams = 1, kMemory = 2 };  // kMemory: weights + KV cache (the additive part)

// Which cost components are budgeted; only those enter a state.
struct Active {
  bool lat = false, par = false, mem = false;
  bool on(int d) const { return d == kLatency ? lat : d == kParams ? par : mem; }
  int scalar_dims() const { return (lat ? 1 : 0) + (par ? 1 : 0) + (mem ? 1 : 0); }
};

// One per-layer choice tuple with its cost, relative to a model with no block kept.
struct Option {
  int64_t attention = 0, intermediate = 0;
  std::array<int64_t, kNumFormatSlots> formats{};
  double score = 0;
  std::array<double, 3> add{};  // latency, params, weights + KV
  double act = 0;               // activation peak of the model with only this layer kept
  uint32_t mask = 0;            // the head size's bit (RoPE tables)
};

struct State {
  double score = 0;
  std::array<double, 3> sum{};
  double act = 0;
  uint32_t mask = 0;
  int32_t parent = -1, option = -1;
};

bool dominates(const State& q, const State& p, const Active& a, double eps) {
  for (int d = 0; d < 3; ++d) {
    if (a.on(d) && q.sum[d] > p.sum[d]) return false;
  }
  if (a.mem && (q.act > p.act || (q.mask & ~p.mask) != 0)) return false;
  return q.score <= p.score + eps;
}

// Keeps the states no other kept state (epsilon-)dominates. Sorted so that an exact dominator comes
// first: by the active costs, the activation peak, the score, then the number of head sizes.
void prune(std::vector<State>& v, const Active& a, double eps) {
  auto key = [&](const State& s) {
    return std::make_tuple(a.lat ? s.sum[kLatency] : 0.0, a.par ? s.sum[kParams] : 0.0, a.mem ? s.sum[kMemory] : 0.0,
                           a.mem ? s.act : 0.0, s.score, std::popcount(s.mask), s.mask);
  };
  std::sort(v.begin(), v.end(), [&](const State& x, const State& y) { return key(x) < key(y); });
  std::vector<State> kept;
  if (a.scalar_dims() == 1 && !a.mem) {
    // One cost: a sweep in cost order keeps a state only if it beats every cheaper one.
    double best = kInf;
    for (const State& s : v) {
      if (s.score < best - eps) {
        kept.push_back(s);
        best = s.score;
      }
    }
  } else {
    for (const State& s : v) {
      bool dom = false;
      for (auto it = kept.rbegin(); it != kept.rend() && !dom; ++it) dom = dominates(*it, s, a, eps);
      if (!dom) kept.push_back(s);
    }
  }
  v.swap(kept);
}

// Prunes exactly; a front still above `max_front` is thinned with a growing epsilon, added to `gap`.
void prune_bounded(std::vector<State>& v, const Active& a, int64_t max_front, double& gap) {
  prune(v, a, 0.0);
  if (static_cast<int64_t>(v.size()) <= max_front) return;
  double lo = kInf, hi = -kInf;
  for (const State& s : v) lo = std::min(lo, s.score), hi = std::max(hi, s.score);
  // With one cost an epsilon of the whole score range leaves one state; with several, states of
  // incomparable costs stay whatever epsilon is: the growth stops there and the front stays larger.
  const double range = std::max(hi - lo, 1e-12);
  double eps = range * 1e-6;
  std::vector<State> t = v;
  for (prune(t, a, eps); static_cast<int64_t>(t.size()) > max_front && eps < range; prune(t, a, eps)) {
    eps *= 4;
    t = v;
  }
  gap += eps;
  v.swap(t);
}

bool same_choices(const LayerChoices& x, const LayerChoices& y) {
  return x.kv_groups == y.kv_groups && x.head_dims == y.head_dims && x.intermediate == y.intermediate &&
         x.formats == y.formats;
}

// The costs of every choice tuple of layer l at hidden choice h (scores not set), from predict()
// of a model whose only kept block is l, minus the model with none.
struct Costing {
  const CostContext& cc;
  Active active;
  std::vector<int64_t> head_sizes;  // distinct head sizes of the space: bit i of a mask

  profile::Cost cost(const model::LlamaConfig& cfg, const std::vector<model::LayerSpec>& specs) const {
    return profile::predict(cfg, specs, *cc.table, cc.workload, cc.dtype_bytes);
  }

  std::vector<Option> options(int64_t h, size_t l, const profile::Cost& none) const {
    const SearchSpace& s = *cc.space;
    const LayerChoices& lc = s.layers[l];
    Arch a = largest_arch(s);
    a.hidden = h;
    auto [cfg, specs] = arch_specs(*cc.config, s, a, cc.block_rank);
    for (auto& sp : specs) sp.skip = true;
    // The attention fields of each (KV groups, head size) come from arch_specs itself.
    std::vector<model::LayerSpec> attn;
    for (size_t g = 0; g < lc.kv_groups.size(); ++g) {
      for (size_t d = 0; d < lc.head_dims.size(); ++d) {
        a.kv_groups[l] = static_cast<int64_t>(g);
        a.head_dims[l] = static_cast<int64_t>(d);
        attn.push_back(arch_specs(*cc.config, s, a, cc.block_rank).second[l]);
      }
    }
    std::vector<Option> out;
    std::array<int64_t, kNumFormatSlots> f{};
    for (size_t ai = 0; ai < attn.size(); ++ai) {
      for (size_t i = 0; i < lc.intermediate.size(); ++i) {
        f.fill(0);
        for (bool more = true; more;) {
          model::LayerSpec sp = attn[ai];
          sp.skip = false;
          sp.intermediate_size = lc.intermediate[i];
          for (int k = 0; k < kNumFormatSlots; ++k) sp.format_of(k) = lc.formats[k][static_cast<size_t>(f[k])];
          specs[l] = sp;
          const profile::Cost c = cost(cfg, specs);
          Option o;
          o.attention = static_cast<int64_t>(ai);
          o.intermediate = static_cast<int64_t>(i);
          o.formats = f;
          if (active.lat) o.add[kLatency] = c.latency_ms - none.latency_ms;
          if (active.par) o.add[kParams] = static_cast<double>(c.params - none.params);
          if (active.mem) {
            o.add[kMemory] = static_cast<double>(c.weight_bytes + c.kv_cache_bytes - none.weight_bytes - none.kv_cache_bytes);
            o.act = static_cast<double>(c.activation_bytes);
            const auto it = std::find(head_sizes.begin(), head_sizes.end(), sp.head_dim);
            o.mask = 1u << (it - head_sizes.begin());
          }
          out.push_back(o);
          // Next format tuple (odometer over the four slots).
          more = false;
          for (int k = 0; k < kNumFormatSlots && !more; ++k) {
            if (++f[k] < static_cast<int64_t>(lc.formats[k].size())) {
              more = true;
            } else {
              f[k] = 0;
            }
          }
        }
      }
    }
    return out;
  }
};

// A finished architecture of one (hidden, depth) pair.
struct Final {
  double score = 0, use = 0;
  Arch arch;
  std::array<double, 3> total{};  // latency, memory (peak), params by the programme
  size_t state = 0;               // index in the last stage, until the architecture is rebuilt
};

// What the programme needs at one hidden size: the model with no block kept, each layer's options
// (scores at this hidden size) and their per-layer Pareto fronts, the RoPE table bytes per head
// size and the memory every architecture pays.
struct HiddenStage {
  profile::Cost none;
  std::vector<std::vector<Option>> fronts;
  std::vector<double> table_bytes;
  double mem_const = 0;
  double tables(uint32_t mask) const {
    double t = 0;
    for (size_t bit = 0; bit < table_bytes.size(); ++bit) t += (mask >> bit) & 1u ? table_bytes[bit] : 0.0;
    return t;
  }
};

HiddenStage prepare_hidden(const Costing& costing, const ScoreTable& scores, int64_t h) {
  const CostContext& cc = costing.cc;
  const SearchSpace& s = *cc.space;
  const Active& act = costing.active;
  const int64_t L = static_cast<int64_t>(s.layers.size());
  HiddenStage hs;
  // The model with no block kept, and the per-layer options (shared by layers with equal choices).
  Arch base = largest_arch(s);
  base.hidden = h;
  auto [cfg, specs] = arch_specs(*cc.config, s, base, cc.block_rank);
  for (auto& sp : specs) sp.skip = true;
  hs.none = costing.cost(cfg, specs);
  const profile::Cost& none = hs.none;
  std::vector<double>& table_bytes = hs.table_bytes;  // RoPE tables per head size bit
  std::vector<std::vector<Option>> opts(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    int64_t same = -1;
    for (int64_t m = 0; m < l && same < 0; ++m) {
      if (same_choices(s.layers[static_cast<size_t>(m)], s.layers[static_cast<size_t>(l)])) same = m;
    }
    std::vector<Option> v = same >= 0 ? opts[static_cast<size_t>(same)] : costing.options(h, static_cast<size_t>(l), none);
    for (Option& op : v) op.score = scores.layer_score(h, static_cast<size_t>(l), op.attention, op.intermediate, op.formats);
    opts[static_cast<size_t>(l)] = std::move(v);
  }
  // RoPE table bytes per head size: one kept layer of that size, minus none.
  if (act.mem) {
    table_bytes.assign(costing.head_sizes.size(), 0.0);
    for (size_t bit = 0; bit < costing.head_sizes.size(); ++bit) {
      for (int64_t l = 0; l < L && table_bytes[bit] == 0.0; ++l) {
        for (const Option& op : opts[static_cast<size_t>(l)]) {
          if (op.mask == (1u << bit)) {
            Arch a = base;
            const int64_t nhd = static_cast<int64_t>(s.layers[static_cast<size_t>(l)].head_dims.size());
            a.kv_groups[static_cast<size_t>(l)] = op.attention / nhd;
            a.head_dims[static_cast<size_t>(l)] = op.attention % nhd;
            auto [c2, sp2] = arch_specs(*cc.config, s, a, cc.block_rank);
            for (auto& x : sp2) x.skip = true;
            sp2[static_cast<size_t>(l)].skip = false;
            table_bytes[bit] = static_cast<double>(costing.cost(c2, sp2).table_bytes - none.table_bytes);
            break;
          }
        }
      }
    }
  }
  hs.mem_const = static_cast<double>(none.weight_bytes + none.runtime_bytes + none.table_bytes);
  // Per-layer fronts (scores at this hidden size).
  std::vector<std::vector<Option>>& fronts = hs.fronts;
  fronts.assign(static_cast<size_t>(L), {});
  for (int64_t l = 0; l < L; ++l) {
    std::vector<State> f;
    const auto& v = opts[static_cast<size_t>(l)];
    for (size_t i = 0; i < v.size(); ++i) {
      State st;
      st.score = v[i].score;
      st.sum = v[i].add;
      st.act = v[i].act;
      st.mask = v[i].mask;
      st.option = static_cast<int32_t>(i);
      f.push_back(st);
    }
    prune(f, act, 0.0);
    for (const State& st : f) fronts[static_cast<size_t>(l)].push_back(v[static_cast<size_t>(st.option)]);
  }
  return hs;
}

// The programme over the kept layers of one (hidden, depth) pair: appends the pair's (use, score)
// front of finished architectures to `finals`.
void solve_pair(const Costing& costing, const HiddenStage& hs, const ScoreTable& scores, const Budget& b,
                const double* limit, const DeriveOptions& o, int64_t h, int64_t d, Derivation& res,
                std::vector<Final>& finals) {
  const CostContext& cc = costing.cc;
  const SearchSpace& s = *cc.space;
  const Active& act = costing.active;
  const int64_t L = static_cast<int64_t>(s.layers.size());
  const profile::Cost& none = hs.none;
  const auto& fronts = hs.fronts;
  const double mem_const = hs.mem_const;
  auto tables = [&](uint32_t mask) { return hs.tables(mask); };
  ++res.global_pairs;
  std::vector<int64_t> kept;
  for (int64_t l = 0; l < L; ++l) {
    if (block_kept(cc.block_rank, l, s.depth[static_cast<size_t>(d)])) kept.push_back(l);
  }
  const size_t K = kept.size();
  // Cheapest completion of stages j.. per scalar component.
  std::vector<std::array<double, 3>> lb(K + 1, std::array<double, 3>{});
  for (size_t j = K; j-- > 0;) {
    for (int c = 0; c < 3; ++c) {
      double m = kInf;
      for (const Option& op : fronts[static_cast<size_t>(kept[j])]) m = std::min(m, op.add[c]);
      lb[j][c] = lb[j + 1][c] + m;
    }
  }
  auto feasible = [&](const State& st, size_t j, const double* lim) {
    if (act.lat && none.latency_ms + st.sum[kLatency] + lb[j][kLatency] > lim[kLatency]) return false;
    if (act.par && static_cast<double>(none.params) + st.sum[kParams] + lb[j][kParams] > lim[kParams]) return false;
    if (act.mem && mem_const + st.sum[kMemory] + lb[j][kMemory] + st.act + tables(st.mask) > lim[kMemory]) return false;
    return true;
  };
  std::vector<std::vector<State>> stages(1);
  State init;
  init.score = scores.global[static_cast<size_t>(h)][static_cast<size_t>(d)];
  init.act = act.mem ? static_cast<double>(none.activation_bytes) : 0.0;
  if (!feasible(init, 0, limit)) return;
  stages[0].push_back(init);
  for (size_t j = 0; j < K; ++j) {
    const std::vector<Option>& f = fronts[static_cast<size_t>(kept[j])];
    std::vector<State> next;
    const std::vector<State>& cur = stages[j];
    for (size_t p = 0; p < cur.size(); ++p) {
      for (size_t i = 0; i < f.size(); ++i) {
        State st;
        st.score = cur[p].score + f[i].score;
        for (int c = 0; c < 3; ++c) st.sum[c] = cur[p].sum[c] + f[i].add[c];
        st.act = std::max(cur[p].act, f[i].act);
        st.mask = cur[p].mask | f[i].mask;
        st.parent = static_cast<int32_t>(p);
        st.option = static_cast<int32_t>(i);
        if (feasible(st, j + 1, limit)) next.push_back(st);
      }
    }
    prune_bounded(next, act, o.max_front, res.gap_bound);
    res.largest_front = std::max(res.largest_front, static_cast<int64_t>(next.size()));
    stages.push_back(std::move(next));
  }
  // Finished states: totals, budget use, and the (use, score) front of this pair.
  std::vector<Final> pair;
  for (size_t i = 0; i < stages[K].size(); ++i) {
    const State& st = stages[K][i];
    Final fin;
    fin.score = st.score;
    fin.total = {none.latency_ms + st.sum[kLatency], mem_const + st.sum[kMemory] + st.act + tables(st.mask),
                 static_cast<double>(none.params) + st.sum[kParams]};
    fin.use = 0;
    if (act.lat) fin.use = std::max(fin.use, fin.total[0] / b.latency_ms);
    if (act.mem) fin.use = std::max(fin.use, fin.total[1] / b.memory_bytes);
    if (act.par) fin.use = std::max(fin.use, fin.total[2] / b.params);
    fin.state = i;
    pair.push_back(fin);
  }
  std::sort(pair.begin(), pair.end(), [](const Final& x, const Final& y) {
    return x.use != y.use ? x.use < y.use : x.score < y.score;
  });
  double best = kInf;
  for (Final& fin : pair) {
    if (!(fin.score < best)) continue;
    best = fin.score;
    // Rebuild the architecture from the back-pointers.
    Arch a = largest_arch(s);
    a.hidden = h;
    a.depth = d;
    int32_t idx = static_cast<int32_t>(fin.state);
    for (size_t j = K; j-- > 0;) {
      const State& st = stages[j + 1][static_cast<size_t>(idx)];
      const Option& op = fronts[static_cast<size_t>(kept[j])][static_cast<size_t>(st.option)];
      const size_t l = static_cast<size_t>(kept[j]);
      const int64_t nhd = static_cast<int64_t>(s.layers[l].head_dims.size());
      a.kv_groups[l] = op.attention / nhd;
      a.head_dims[l] = op.attention % nhd;
      a.intermediate[l] = op.intermediate;
      a.formats[l] = op.formats;
      idx = st.parent;
    }
    fin.arch = a;
    finals.push_back(fin);
  }
}

}  // namespace

std::pair<double, std::string> budget_use(const profile::Cost& c, const Budget& b) {
  std::pair<double, std::string> u{0.0, ""};
  auto take = [&](double limit, double v, const char* name) {
    if (limit > 0 && (u.second.empty() || v / limit > u.first)) u = {v / limit, name};
  };
  take(b.latency_ms, c.latency_ms, "latency");
  take(b.memory_bytes, static_cast<double>(c.peak_bytes()), "memory");
  take(b.params, static_cast<double>(c.params), "params");
  return u;
}

Json Derivation::to_json(const SearchSpace& space) const {
  Json j{{"score", score},       {"binding", binding},           {"budget_use", budget_use},
         {"gap_bound", gap_bound}, {"exact", gap_bound == 0.0},   {"largest_front", largest_front},
         {"global_pairs", global_pairs}};
  if (has_next) {
    j["next_larger"] = Json{{"architecture", next.to_json(space)},
                            {"score", next_score},
                            {"budget_use", next_budget_use},
                            {"predicted", next_predicted.to_json()}};
  }
  return j;
}

Derivation derive(const CostContext& cc, const Budget& b, const ScoreTable& scores, const DeriveOptions& o) {
  JNAS_CHECK_CONFIG(b.any(), "derive needs a budget: latency, memory or parameters");
  JNAS_CHECK_CONFIG(o.relax >= 1.0 && o.max_front >= 1, "derive: relax must be >= 1 and max_front >= 1, got {} and {}",
                    o.relax, o.max_front);
  const SearchSpace& s = *cc.space;
  JNAS_CHECK_CONFIG(o.hidden < static_cast<int64_t>(s.hidden.size()), "derive: hidden choice {} of {}", o.hidden,
                    s.hidden.size());
  scores.check(s, "derive: score table");
  Costing costing{cc, {b.latency_ms > 0, b.params > 0, b.memory_bytes > 0}, {}};
  const Active& act = costing.active;
  {
    std::set<int64_t> hs;
    for (const LayerChoices& lc : s.layers) hs.insert(lc.head_dims.begin(), lc.head_dims.end());
    costing.head_sizes.assign(hs.begin(), hs.end());
    JNAS_CHECK_CONFIG(costing.head_sizes.size() <= 32, "derive: {} distinct head sizes (at most 32)", hs.size());
  }
  const double limit[3] = {b.latency_ms * o.relax, b.params * o.relax, b.memory_bytes * o.relax};
  Derivation res;
  std::vector<Final> finals;

  for (int64_t h = 0; h < static_cast<int64_t>(s.hidden.size()); ++h) {
    if (o.hidden >= 0 && h != o.hidden) continue;
    const HiddenStage hs = prepare_hidden(costing, scores, h);
    for (int64_t d = 0; d < static_cast<int64_t>(s.depth.size()); ++d) {
      solve_pair(costing, hs, scores, b, limit, o, h, d, res, finals);
    }
  }
  // The best within the budget, and the cheapest with a better score.
  const Final* best = nullptr;
  for (const Final& f : finals) {
    if (f.use <= 1.0 && (best == nullptr || f.score < best->score)) best = &f;
  }
  JNAS_CHECK_CONFIG(best != nullptr,
                    "derive: no architecture of the search space meets every budget jointly ({}); raise a budget or "
                    "widen the space",
                    b.to_json().dump());
  const Final* next = nullptr;
  for (const Final& f : finals) {
    if (f.score < best->score && (next == nullptr || f.use < next->use)) next = &f;
  }
  res.arch = best->arch;
  res.score = best->score;
  res.predicted = arch_cost(cc, res.arch);
  // The programme's totals are predict()'s, term for term; a drift here is a bug, not a tolerance.
  auto check = [&](const Final& f, const profile::Cost& c) {
    const double got[3] = {c.latency_ms, static_cast<double>(c.peak_bytes()), static_cast<double>(c.params)};
    const bool on[3] = {act.lat, act.mem, act.par};
    for (int i = 0; i < 3; ++i) {
      TORCH_INTERNAL_ASSERT(!on[i] || std::abs(f.total[i] - got[i]) <= 1e-9 * std::max(1.0, std::abs(got[i])),
                            "derive: the programme's cost ", f.total[i], " differs from predict() ", got[i]);
    }
  };
  check(*best, res.predicted);
  std::tie(res.budget_use, res.binding) = budget_use(res.predicted, b);
  if (next != nullptr) {
    res.has_next = true;
    res.next = next->arch;
    res.next_score = next->score;
    res.next_predicted = arch_cost(cc, res.next);
    check(*next, res.next_predicted);
    res.next_budget_use = budget_use(res.next_predicted, b).first;
  }
  return res;
}

}  // namespace jointnas::search
