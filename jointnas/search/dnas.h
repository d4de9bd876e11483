// Differentiable joint search (method.md, steps 3-5; docs/search.md "The search"):
//   loss = KD(teacher || supernet under relaxed probabilities) + budget penalty on the expected
//   cost from the latency table; bi-level first-order alternating updates (LoRA adapters on one
//   split of the data, architecture logits on the other; a frozen-weights mode skips the first);
//   Gumbel temperature annealed exponentially; a decision whose normalised entropy falls below a
//   threshold is frozen at its argmax (its other branches drop out of the mixture); the search
//   stops early once every decision is decided or the mean entropy falls below a global threshold.
// Then the argmax architecture is repaired until the table says it meets every budget.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/workload.h"
#include "jointnas/search/arch_io.h"
#include "jointnas/search/budget.h"
#include "jointnas/search/decisions.h"
#include "jointnas/search/head_loss.h"
#include "jointnas/search/space.h"
#include "jointnas/search/supernet.h"
#include "jointnas/search/train_state.h"

namespace jointnas::search {

struct DnasOptions {
  int64_t steps = 100;           // alternating steps (each: one LoRA update, one architecture update)
  int64_t batch = 4, seq_len = 128;
  Relaxation relaxation = Relaxation::kGumbel;
  double tau_start = 1.0, tau_end = 0.1;  // Gumbel temperature, annealed exponentially
  double lr_arch = 0.05, lr_lora = 1e-3;  // Adam
  bool train_lora = true;        // false: frozen-weights mode (architecture updates only)
  int64_t warmup_steps = 0;      // LoRA-only steps before the architecture moves
  HeadLossOptions loss;          // KD temperature and weights, head chunking
  // Per budget b, with r_b = E[cost_b] / budget_b (relative, so one weight serves milliseconds,
  // bytes and parameters; linear, so the push does not fade near the budget):
  //   "target": weight * |r_b - 1| on the primary budget (latency if set, else memory, else
  //             params) and max(0, r_b - 1) on the others. The default: a budget is capacity to
  //             spend, and distillation alone pushes back too weakly against a one-sided penalty
  //             (measured: ref-17m at a 0.6x budget ended at 0.43x, docs/results.md).
  //   "hinge":  weight * max(0, r_b - 1) on every budget (smaller models are free).
  // The repair makes the final architecture meet every budget exactly either way.
  std::string penalty_form = "target";
  double penalty_weight = 2.0;
  // weight * t/steps * mean normalised entropy of the undecided decisions: a ramp that pushes
  // every decision towards one choice as the search ends, so that the entropy threshold is
  // reached and the expected cost becomes the argmax's.
  double entropy_weight = 1.0;
  double entropy_threshold = 0.15;  // per decision: normalised entropy below which it freezes
  double stop_entropy = 0.05;       // global: mean normalised entropy that ends the search
  uint64_t seed = 0;
  // Checkpoints (docs/search.md "Checkpoints"): the whole state (logits, LoRA, both Adam states,
  // frozen flags, data-order and Gumbel RNG states, step) goes to `checkpoint.dir` atomically; a
  // run that finds one resumes from it, bit-identically on the CPU.
  Checkpointing checkpoint;
};

// `tokens`: the training stream, cut into windows of seq_len alternately assigned to the weight
// and architecture splits. `log(step record)` receives one JSON object per step. Checks the budget
// before training.
DnasResult run_dnas(Supernet& net, const std::vector<int64_t>& tokens, const CostContext& cc, const Budget& budget,
                    const DnasOptions& o, ProcessGroup& pg, const std::function<void(const Json&)>& log);

}  // namespace jointnas::search
