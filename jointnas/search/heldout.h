// Held-out windows for the decisions made after training data is seen (issue 22): the sensitivity
// scores, the portfolio's choice among finetuned candidates and early stopping all measure on
// windows the finetune never trains on, and the evaluation text stays untouched by every decision.
// The quality measure is the distillation target itself: mean per-token KL(original || model), with
// the next-token NLL beside it.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/search/supernet.h"

namespace jointnas::search {

struct TokenSplit {
  std::vector<int64_t> train, heldout;
};
// `heldout_windows` windows of `seq_len` tokens, spread evenly over the stream, are held out; the
// rest, in order, is training (no held-out token also sits in a training window). ConfigError when
// the stream leaves fewer than `min_train_windows` training windows.
TokenSplit split_heldout(const std::vector<int64_t>& stream, int64_t heldout_windows, int64_t seq_len,
                         int64_t min_train_windows);

struct HeldoutScore {
  double kl = 0;    // mean over predictions of KL(original || model), nats
  double nll = 0;   // mean next-token NLL, nats
  double top1 = 0;  // fraction of predictions whose argmax agrees with the original's
  int64_t tokens = 0;
};

// Non-overlapping windows of a token stream, scored in batches. The original model's hidden states
// are computed once, by the first supernet that evaluates, and reused: every supernet evaluated on
// one set must come from the same checkpoint (they share the teacher: the whole original model).
class HeldoutSet {
 public:
  // At most `max_windows` windows of `seq_len` (0: all); `batch` windows per forward.
  HeldoutSet(const std::vector<int64_t>& tokens, int64_t seq_len, int64_t max_windows, int64_t batch);

  // Position t of each window predicts token t + 1: T - 1 predictions per window. No gradient.
  HeldoutScore evaluate(const Supernet& net, const ArchDist& dist) const;

  int64_t windows() const { return windows_.size(0); }
  int64_t seq_len() const { return windows_.size(1); }

 private:
  at::Tensor windows_;  // [n, seq_len] int64
  int64_t batch_ = 1;
  mutable std::vector<at::Tensor> teacher_;  // per batch: [b * (T - 1), H] of the original model
};

}  // namespace jointnas::search
