// Width and depth importance from activations on calibration text (Minitron-style magnitudes:
// hidden channels, KV groups, v dimensions, MLP neurons; block influence for depth), and the
// function-preserving permutation that puts every ranking's most important entries first, so that
// any prefix cut (width pruning, elastic supernet widths) keeps the most important part.
// docs/importance.md has the estimators, the JSON schema and the permutation.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/core/json_util.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"

namespace jointnas::compress {

// One ranking: perm[new] = old index, sorted by score descending (ties: smaller old index
// first); score[new] = the score of old index perm[new], so score is non-increasing.
struct Ranking {
  std::vector<int64_t> perm;
  std::vector<double> score;
};

// Builds the ranking of `score` (indexed by old index): std::stable_sort, descending.
Ranking rank_descending(const std::vector<double>& score);

struct LayerImportance {
  Ranking kv_groups;             // [nkv]: a KV head together with its nh / nkv query heads
  // [nkv] rankings of [hd] v dimensions, in the NEW group order: v_dims[j] ranks the v dims of
  // the group that lands at position j (original group kv_groups.perm[j]).
  std::vector<Ranking> v_dims;
  Ranking neurons;               // [I]
  // Skipped layers (LayerSpec::skip) have no weights: every ranking is empty.
  bool empty() const { return kv_groups.perm.empty(); }
};

struct CalibrationInfo {
  std::string file;      // the calibration text ("" when windows were given directly)
  int64_t windows = 0;
  int64_t seq_len = 0;
  uint64_t seed = 0;
  int64_t tokens = 0;    // windows * seq_len
};

struct Importance {
  static constexpr int kFormatVersion = 1;
  std::string source;  // the model the statistics come from
  CalibrationInfo calibration;
  // [L] mean over tokens of 1 - cos(block input, block output); 0 for skipped layers (identity).
  std::vector<double> block_influence;
  // [L] layers by influence descending: block_rank[r] is the layer of rank r (0 = most
  // important; ties by smaller index). Depth is ranked, never permuted.
  std::vector<int64_t> block_rank;
  Ranking hidden;                       // [H]
  std::vector<LayerImportance> layers;  // [L]

  Json to_json() const;
  // Parses and validates untrusted JSON (`source` names the file in errors): every perm is a
  // permutation of 0..n-1 with n scores, v_dims has one ranking per KV group, block_rank is a
  // permutation of the layers. Throws IoError.
  static Importance from_json(const Json& j, const std::string& source);
  // Checks the lengths against a model's config and layer specs (dense_layer_specs(config));
  // throws IoError naming `source`.
  void check_shapes(const model::LlamaConfig& config, const std::string& source) const;
};

struct ImportanceOptions {
  int64_t batch = 8;  // calibration windows per forward
};

// Runs `m` on `windows` [n, T] int64 and ranks hidden channels, KV groups, v dims, neurons and
// blocks (statistics in fp32, accumulated in fp64). Fills calibration.windows / seq_len / tokens;
// the caller sets source, file and seed. `progress(done, total)` after each batch of windows.
Importance compute_importance(const model::LlamaModel& m, const at::Tensor& windows,
                              const ImportanceOptions& opts = {},
                              const std::function<void(int64_t, int64_t)>& progress = {});

// Applies the permutations to a float checkpoint's HF-named tensors and returns the permuted
// checkpoint (same config, same dtypes; the model computes the same function up to fp rounding).
// Throws ConfigError for a packed / quantized checkpoint, IoError when `imp` does not fit it.
model::Checkpoint permute_checkpoint(const model::Checkpoint& ckpt, const Importance& imp);
// The float-checkpoint check permute_checkpoint starts with (callers run it before the costly
// calibration): throws ConfigError for packed tensors or quantized formats in the layer specs.
void check_permutable(const model::Checkpoint& ckpt);

// importance.json lists block_rank[r] = the layer at rank r; returns the rank of each layer (what
// the supernet and the cost model take). IoError unless it is a permutation of 0..layers-1.
std::vector<int64_t> load_block_rank(const std::string& importance_json, int64_t layers);

}  // namespace jointnas::compress
