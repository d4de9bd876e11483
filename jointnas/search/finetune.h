// Recovery finetuning of a found architecture (method.md step 6): the supernet over the space
// restricted to that architecture computes exactly the sub-network (with the fake quantization of
// its formats), LoRA adapters on its linears learn from the original model by distillation, and
// extract_checkpoint() then merges LoRA and quantizes for real on the same grid.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/search/head_loss.h"
#include "jointnas/search/supernet.h"
#include "jointnas/search/train_state.h"

namespace jointnas::search {

struct FinetuneOptions {
  int64_t steps = 100, batch = 4, seq_len = 128;
  double lr = 1e-3;  // Adam on the LoRA adapters
  HeadLossOptions loss;
  uint64_t seed = 0;
  // LoRA, Adam state, data-order RNG, step and the KD history go to `checkpoint.dir` atomically;
  // a run that finds a checkpoint resumes from it, bit-identically on the CPU.
  Checkpointing checkpoint;
  // Called after each step with the number of steps done; true stops the finetune there (early
  // stopping: search/recovery.h). Not part of a checkpoint's identity.
  std::function<bool(int64_t)> after_step;
};

struct FinetuneResult {
  int64_t steps = 0;  // steps run (fewer than asked when after_step stopped it)
  double first_kd = 0, last_kd = 0;  // mean KD of the first and last 10% of steps
};

// `net` must be built over a single-architecture space (restrict_to) with lora_rank > 0.
FinetuneResult run_finetune(Supernet& net, const std::vector<int64_t>& tokens, const FinetuneOptions& o,
                            ProcessGroup& pg, const std::function<void(const Json&)>& log);

}  // namespace jointnas::search
