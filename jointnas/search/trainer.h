// What the two training loops (the search's alternating updates, the finetune's LoRA distillation)
// share: windows of a token stream and the batches drawn from them (the data order), the
// distillation loss of a batch, an optimizer step of one parameter group, an optimizer's state in
// a checkpoint, and the step loop with its checkpoints and interrupt (docs/search.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/search/adam.h"
#include "jointnas/search/head_loss.h"
#include "jointnas/search/supernet.h"
#include "jointnas/search/train_state.h"

namespace jointnas::search {

// The stream cut into consecutive windows of `seq_len` tokens: [n, seq_len] int64 (the tail that
// does not fill a window is dropped).
at::Tensor cut_windows(const std::vector<int64_t>& tokens, int64_t seq_len);

// The data order: every batch is `batch` rows drawn uniformly (with replacement) from a set of
// windows by one mt19937_64; with several ranks all rows are drawn and each rank takes its slice,
// so that the order does not depend on the world size.
class BatchSampler {
 public:
  explicit BatchSampler(uint64_t seed) : rng_(seed) {}
  at::Tensor draw(const at::Tensor& windows, int64_t batch, const ProcessGroup& pg);
  std::string state() const;
  // IoError naming `source` when `s` is not a saved state.
  void restore(const std::string& s, const std::string& source);

 private:
  std::mt19937_64 rng_;
};

// The supernet under `dist` against its own teacher (the original weights) on `ids` [B, T]:
// head_loss's {total, kd, ce, top-1 agreement}.
at::Tensor distillation_loss(const Supernet& net, const at::Tensor& ids, const ArchDist& dist,
                             const HeadLossOptions& o);

// Backward of the scalar `loss`, the group's gradients averaged over ranks, one Adam step.
void adam_step(Adam& opt, const at::Tensor& loss, ProcessGroup& pg);

// An Adam's tensors in a checkpoint: `prefix`/NNNNN (parameters), `prefix`_m, `prefix`_v.
void put_adam(std::map<std::string, at::Tensor>& t, const std::string& prefix, const Adam& a);
void get_adam(const CheckpointDir::Loaded& l, const std::string& prefix, Adam& a);

// The step loop: body(step) for step in [start, steps) until it returns true (stop); after every
// step the state is saved (save(steps done)) when the checkpoint policy says so, at the end, or on
// an interrupt, after which Interrupted is thrown (`what` names the loop in its message).
void run_steps(const CheckpointDir& ckpt, int64_t start, int64_t steps, const char* what,
               const std::function<bool(int64_t)>& body, const std::function<void(int64_t)>& save);

}  // namespace jointnas::search
