#include "jointnas/search/sensitivity.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "jointnas/core/error.h"

namespace jointnas::search {
namespace {

int64_t per_layer_evaluations(const SearchSpace& s) {
  int64_t n = 0;
  for (const LayerChoices& lc : s.layers) {
    n += static_cast<int64_t>(lc.kv_groups.size() * lc.head_dims.size()) - 1;
    n += static_cast<int64_t>(lc.intermediate.size()) - 1;
    for (const auto& f : lc.formats) n += static_cast<int64_t>(f.size()) - 1;
  }
  return n;
}

}  // namespace

int64_t sensitivity_evaluations(const SearchSpace& s, const SensitivityOptions& o) {
  const int64_t rows = o.per_hidden ? static_cast<int64_t>(s.hidden.size()) : 1;
  return static_cast<int64_t>(s.hidden.size() * s.depth.size()) + rows * per_layer_evaluations(s);
}

ScoreTable measure_sensitivity(const Supernet& net, const HeldoutSet& heldout, const SensitivityOptions& o,
                               const std::function<void(int64_t, int64_t)>& progress) {
  const SearchSpace& s = net.space();
  const Arch ref = largest_arch(s);
  const int64_t total = sensitivity_evaluations(s, o);
  int64_t done = 0;
  auto kl = [&](const Arch& a) {
    const double v = heldout.evaluate(net, net.one_hot(a)).kl;
    if (progress) progress(++done, total);
    return v;
  };
  ScoreTable t;
  t.source = "sensitivity";
  // Global pairs, measured jointly; the reference's own pair is the zero of every score.
  const double k_ref = kl(ref);
  std::vector<std::vector<double>> at_pair(s.hidden.size(), std::vector<double>(s.depth.size(), 0.0));
  for (size_t h = 0; h < s.hidden.size(); ++h) {
    for (size_t d = 0; d < s.depth.size(); ++d) {
      Arch a = ref;
      a.hidden = static_cast<int64_t>(h);
      a.depth = static_cast<int64_t>(d);
      const bool is_ref = a.hidden == ref.hidden && a.depth == ref.depth;
      at_pair[h][d] = is_ref ? k_ref : kl(a);
    }
    std::vector<double> row;
    for (double v : at_pair[h]) row.push_back(v - k_ref);
    t.global.push_back(row);
  }
  // One decision at a time, relative to the reference at the same hidden size.
  std::vector<int64_t> rows;
  for (int64_t h = o.per_hidden ? 0 : ref.hidden; h <= ref.hidden; ++h) rows.push_back(h);
  for (int64_t h : rows) {
    Arch base = ref;
    base.hidden = h;
    const double k_base = at_pair[static_cast<size_t>(h)][static_cast<size_t>(ref.depth)];
    auto increase = [&](const std::function<void(Arch&)>& change, bool is_ref) {
      if (is_ref) return 0.0;
      Arch a = base;
      change(a);
      return kl(a) - k_base;
    };
    std::vector<LayerScores> layer_row;
    for (size_t l = 0; l < s.layers.size(); ++l) {
      const LayerChoices& lc = s.layers[l];
      LayerScores ls;
      for (size_t g = 0; g < lc.kv_groups.size(); ++g) {
        for (size_t d = 0; d < lc.head_dims.size(); ++d) {
          const int64_t gi = static_cast<int64_t>(g), di = static_cast<int64_t>(d);
          ls.attention.push_back(increase([&](Arch& a) { a.kv_groups[l] = gi, a.head_dims[l] = di; },
                                          gi == ref.kv_groups[l] && di == ref.head_dims[l]));
        }
      }
      for (size_t i = 0; i < lc.intermediate.size(); ++i) {
        const int64_t ii = static_cast<int64_t>(i);
        ls.intermediate.push_back(increase([&](Arch& a) { a.intermediate[l] = ii; }, ii == ref.intermediate[l]));
      }
      for (int k = 0; k < kNumFormatSlots; ++k) {
        for (size_t f = 0; f < lc.formats[k].size(); ++f) {
          const int64_t fi = static_cast<int64_t>(f);
          ls.formats[k].push_back(increase([&](Arch& a) { a.formats[l][k] = fi; }, fi == ref.formats[l][k]));
        }
      }
      layer_row.push_back(std::move(ls));
    }
    t.layers.push_back(std::move(layer_row));
  }
  return t;
}

std::vector<double> measure_block_drops(const model::Checkpoint& ckpt, const SearchSpace& space, const HeldoutSet& heldout,
                                        const SupernetOptions& so) {
  const int64_t L = static_cast<int64_t>(space.layers.size());
  const auto it = std::find(space.depth.begin(), space.depth.end(), L - 1);
  JNAS_CHECK_CONFIG(it != space.depth.end(), "block drops need the depth choice {} (all blocks but one) in the space", L - 1);
  const Arch ref = largest_arch(space);
  Arch drop = ref;
  drop.depth = it - space.depth.begin();
  std::vector<double> out;
  double k_ref = 0;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<int64_t> rank(static_cast<size_t>(L));
    for (int64_t m = 0, r = 0; m < L; ++m) rank[static_cast<size_t>(m)] = m == l ? L - 1 : r++;
    const Supernet net(ckpt, space, rank, so, 0);
    if (l == 0) k_ref = heldout.evaluate(net, net.one_hot(ref)).kl;
    out.push_back(heldout.evaluate(net, net.one_hot(drop)).kl - k_ref);
  }
  return out;
}

std::vector<int64_t> rank_by_drop(const std::vector<double>& drops) {
  std::vector<int64_t> order(drops.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return drops[static_cast<size_t>(a)] > drops[static_cast<size_t>(b)];
  });
  std::vector<int64_t> rank(drops.size());
  for (size_t r = 0; r < order.size(); ++r) rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r);
  return rank;
}

}  // namespace jointnas::search
