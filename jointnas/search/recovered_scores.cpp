#include "jointnas/search/recovered_scores.h"

#include <algorithm>

#include "jointnas/core/error.h"

namespace jointnas::search {

Arch random_arch(const SearchSpace& s, std::mt19937_64& rng) {
  Arch a = largest_arch(s);
  for (Decision& d : decisions(s, a)) *d.index = std::uniform_int_distribution<int64_t>(0, d.choices - 1)(rng);
  return a;
}

Json RecoveredScores::to_json(const SearchSpace& space) const {
  Json s = Json::array();
  for (const Sample& x : samples) {
    s.push_back(Json{{"architecture", x.arch.to_json(space)}, {"layer_terms", x.layer_terms}, {"kl_after", x.kl_after}});
  }
  Json j = table.to_json();
  j["recovery"] = Json{{"global_before", global_before}, {"layer_weight", layer_weight}, {"samples", s}};
  return j;
}

RecoveredScores recover_scores(const model::Checkpoint& ckpt, const CostContext& cc, const ScoreTable& scores,
                               const std::vector<int64_t>& train, const HeldoutSet& heldout, const PortfolioOptions& o,
                               int64_t samples_per_hidden, uint64_t seed,
                               const std::function<void(int64_t, int64_t)>& progress) {
  const SearchSpace& s = *cc.space;
  scores.check(s, "recover_scores");
  JNAS_CHECK_CONFIG(samples_per_hidden >= 0, "recover_scores: samples per hidden size must be >= 0, got {}",
                    samples_per_hidden);
  const int64_t nh = static_cast<int64_t>(s.hidden.size()), nd = static_cast<int64_t>(s.depth.size());
  const int64_t total = nh * nd + nh * samples_per_hidden;
  int64_t done = 0;
  auto kl_after = [&](const Arch& a) {
    const double v = finetune_candidate(ckpt, cc, {"recovery", a}, train, heldout, o, {}).recovery.best.kl;
    if (progress) progress(++done, total);
    return v;
  };
  RecoveredScores r;
  r.global_before = scores.global;
  r.table = scores;
  r.table.source = scores.source + "+recovered";
  const Arch ref = largest_arch(s);
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t d = 0; d < nd; ++d) {
      Arch a = ref;
      a.hidden = h;
      a.depth = d;
      r.table.global[static_cast<size_t>(h)][static_cast<size_t>(d)] = kl_after(a);
    }
  }
  // Least squares through the origin: weight = sum x y / sum x^2 over the samples, with x the
  // per-layer terms and y the KL above the pair's recovered global term; never negative.
  std::mt19937_64 rng(seed);
  double sxy = 0, sxx = 0;
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t i = 0; i < samples_per_hidden; ++i) {
      Arch a = random_arch(s, rng);
      a.hidden = h;
      a.depth = ref.depth;
      RecoveredScores::Sample x{a, scores.score(s, a, cc.block_rank) - scores.global[static_cast<size_t>(h)][static_cast<size_t>(ref.depth)],
                                kl_after(a)};
      const double y = x.kl_after - r.table.global[static_cast<size_t>(h)][static_cast<size_t>(ref.depth)];
      sxy += x.layer_terms * y;
      sxx += x.layer_terms * x.layer_terms;
      r.samples.push_back(x);
    }
  }
  r.layer_weight = sxx > 0 ? std::max(0.0, sxy / sxx) : 1.0;
  for (auto& row : r.table.layers) {
    for (LayerScores& ls : row) {
      for (double& v : ls.attention) v *= r.layer_weight;
      for (double& v : ls.intermediate) v *= r.layer_weight;
      for (auto& f : ls.formats) {
        for (double& v : f) v *= r.layer_weight;
      }
    }
  }
  return r;
}

}  // namespace jointnas::search
