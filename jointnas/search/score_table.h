// A quality score over a search space, additive over its decisions (issue 22): what the exact
// derivation (search/derive.h) minimises. Lower is better. With hidden choice h and depth choice d,
//   score(arch) = global[h][d] + sum over kept layers l of
//                 ( attention[l][g * n_head_dims + k] + intermediate[l][i] + sum_slot formats[l][slot][f] )
// where the per-layer terms may depend on the hidden choice (one row of layers per hidden choice)
// or not (a single row used for every hidden choice). The global term is a table, not a sum, so it
// carries the interactions of the global decisions (dropped blocks interact; docs/search.md).
// Two sources: measured sensitivity (search/sensitivity.h) and the DNAS logits (-log p, so that the
// derivation is the exact maximum a posteriori architecture under the budget). Torch-free.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/search/space.h"

namespace jointnas::search {

struct LayerScores {
  std::vector<double> attention;     // index kv_groups * n_head_dims + head_dim (search/cost.h's order)
  std::vector<double> intermediate;  // per MLP width choice
  std::array<std::vector<double>, kNumFormatSlots> formats;  // per slot, per format choice
};

struct ScoreTable {
  std::string source;                            // "sensitivity" | "dnas_log_probs" | ...
  std::vector<std::vector<double>> global;       // [hidden choice][depth choice]
  std::vector<std::vector<LayerScores>> layers;  // [hidden choice, or 1 row for all][layer]

  // The per-layer scores of layer l at hidden choice h.
  const LayerScores& layer(int64_t hidden, size_t l) const;
  // The score of one per-layer choice tuple of layer l at hidden choice h.
  double layer_score(int64_t hidden, size_t l, int64_t attention, int64_t intermediate,
                     const std::array<int64_t, kNumFormatSlots>& formats) const;
  double score(const SearchSpace& space, const Arch& arch, const std::vector<int64_t>& block_rank) const;
  // ConfigError unless every list matches the space's choice counts and every value is finite;
  // `source` names the file in the message.
  void check(const SearchSpace& space, const std::string& where) const;

  Json to_json() const;
  static ScoreTable from_json(const Json& j, const std::string& where);
};

// -log p of the DNAS logits' softmax (`log_probs` by decision name, as repair_to_budget takes them);
// a decision with a single choice, or missing, scores 0. The attention term adds the KV-group and
// head-size terms; the global term the hidden and depth terms.
ScoreTable score_table_from_log_probs(const SearchSpace& space,
                                      const std::map<std::string, std::vector<double>>& log_probs);

// The scores of `from` over `to`, a sub-space of it (every choice of `to` is a choice of `from`,
// matched by value, as map_arch matches architectures); ConfigError naming the first that is not.
ScoreTable map_scores(const ScoreTable& t, const SearchSpace& from, const SearchSpace& to);

// Spearman's rank correlation of two samples (ties get their mean rank); NaN when either sample is
// constant or the sizes differ or are below 2.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace jointnas::search
