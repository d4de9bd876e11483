// Scores that predict quality after recovery (issue 22). Sensitivity is measured on the cut model,
// but architectures are compared after finetuning, and finetuning recovers decisions unequally:
// on stories260K a narrower residual stream recovers far less than its pre-finetune KL promises,
// dropped blocks far more, and narrower layers most (docs/search.md). Two measured corrections keep
// the score additive, so that the derivation stays exact:
//  - the global table (hidden size x depth) is measured after a short finetune of each pair at the
//    reference widths: one finetune per pair;
//  - the per-layer terms are scaled by one weight, fitted by least squares through the origin on a
//    few finetuned architectures per hidden size with random per-layer choices at full depth:
//      KL_after(a) - global_after[h][full depth] ~= weight * sum of a's per-layer terms.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/score_table.h"

namespace jointnas::search {

struct RecoveredScores {
  ScoreTable table;                               // global after finetuning, per-layer terms x weight
  std::vector<std::vector<double>> global_before;  // the sensitivity table's global terms
  double layer_weight = 1;
  struct Sample {
    Arch arch;
    double layer_terms = 0, kl_after = 0;
  };
  std::vector<Sample> samples;  // the weight's fit
  Json to_json(const SearchSpace& space) const;
};

// A uniformly random choice per decision.
Arch random_arch(const SearchSpace& space, std::mt19937_64& rng);

// `scores`: sensitivity scores of cc.space; `samples_per_hidden` random architectures per hidden
// size fit the weight (0: weight 1). Finetunes (hidden x depth) + samples_per_hidden x hidden
// architectures with `o`, each scored on `heldout`.
RecoveredScores recover_scores(const model::Checkpoint& ckpt, const CostContext& cc, const ScoreTable& scores,
                               const std::vector<int64_t>& train, const HeldoutSet& heldout, const PortfolioOptions& o,
                               int64_t samples_per_hidden, uint64_t seed,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace jointnas::search
