// Recovery finetuning with early stopping on held-out KL (issue 22): run_finetune, evaluated on
// held-out windows every `eval_every` steps; it stops after `patience` evaluations without an
// improvement and restores the adapters of the best evaluation, so that more steps never return a
// worse model than fewer did (on the held-out windows).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/search/finetune.h"
#include "jointnas/search/heldout.h"
#include "jointnas/search/supernet.h"

namespace jointnas::search {

struct EarlyStopping {
  int64_t eval_every = 0;  // steps between held-out evaluations; 0: no evaluation, no early stop
  int64_t patience = 3;    // evaluations without improvement before stopping (0: never stop early)
  double min_delta = 0.0;  // an improvement is kl < best * (1 - min_delta)
};

struct RecoveryPoint {
  int64_t step = 0;
  HeldoutScore score;
};

struct RecoveryResult {
  FinetuneResult finetune;
  std::vector<RecoveryPoint> curve;  // held-out scores; step 0 (before any update) first
  int64_t best_step = 0;             // the step whose adapters the model holds at the end
  HeldoutScore best;                 // its held-out score
  Json to_json() const;
};

// `net`: restricted to one architecture (restrict_to) with LoRA. The held-out set is evaluated
// before the first step and at the end, whatever `es`. `o.after_step` must be unset (it is used here).
RecoveryResult run_recovery(Supernet& net, const std::vector<int64_t>& train, const HeldoutSet& heldout,
                            FinetuneOptions o, const EarlyStopping& es, ProcessGroup& pg,
                            const std::function<void(const Json&)>& log);

}  // namespace jointnas::search
