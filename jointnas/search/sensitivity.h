// Per-decision sensitivity scores (issue 22), in the style of NVIDIA Puzzle's replace-one-block
// scoring (Bercovich et al. 2024, "Puzzle: Distillation-Based NAS for Inference-Optimized LLMs",
// Sec. 4.1): starting from the reference architecture (the largest in bf16: the original model when
// the space contains it), change ONE decision to one choice and measure the mean per-token
// KL(original || modified) on held-out windows. A decision's score is the KL increase over the
// reference; an architecture's score is the sum over its decisions (search/score_table.h).
//
// Two measured corrections for interactions:
//  - the global decisions (hidden size x depth) are measured jointly, every pair: dropped blocks
//    interact (the KL of dropping k blocks is not the sum of single drops), and the table is small;
//  - with `per_hidden`, every per-layer decision is measured again at each hidden size, relative to
//    the reference at that hidden size (a narrower residual stream changes what a layer's widths
//    and formats cost in quality).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "jointnas/model/checkpoint.h"

#include "jointnas/search/heldout.h"
#include "jointnas/search/score_table.h"
#include "jointnas/search/supernet.h"

namespace jointnas::search {

struct SensitivityOptions {
  bool per_hidden = true;  // false: per-layer decisions measured at the largest hidden size only
};

// Number of held-out evaluations measure_sensitivity makes (the reference included).
int64_t sensitivity_evaluations(const SearchSpace& space, const SensitivityOptions& o);

// `net`: a supernet over the whole space (its LoRA, if any, is used as it is; B = 0 at creation, so
// a fresh supernet is the pretrained model). `progress(done, total)` after each evaluation.
ScoreTable measure_sensitivity(const Supernet& net, const HeldoutSet& heldout, const SensitivityOptions& o,
                               const std::function<void(int64_t, int64_t)>& progress = {});

// The KL increase of dropping each block alone (the rest as the reference), one supernet per block
// with a ranking that puts it last: `space.depth` must offer num_hidden_layers - 1 blocks
// (ConfigError otherwise). The measured counterpart of block influence (ShortGPT's 1 - cos).
std::vector<double> measure_block_drops(const model::Checkpoint& ckpt, const SearchSpace& space, const HeldoutSet& heldout,
                                        const SupernetOptions& so);
// A depth order from block drops: the rank of each layer (rank 0 = kept longest = the largest
// drop KL), ties by layer index: the convention of Supernet's block_rank.
std::vector<int64_t> rank_by_drop(const std::vector<double>& drops);

}  // namespace jointnas::search
