// The `finetune` stage: the architecture of an arch.json (its LayerSpecs), cut from the permuted
// model, recovered by LoRA + fake-quant distillation from the original, LoRA merged, quantized for
// real and written as an HF directory (export/hf_directory.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"
#include "jointnas/search/finetune.h"

namespace jointnas::search {
template <class V>
void fields(V& v, FinetuneOptions& o) {
  v(opt::Key{"steps", "Distillation steps (0: export without finetuning)"}, o.steps, opt::in<int64_t>(0, 10000000));
  pipeline::training_fields(v, o.batch, o.seq_len, o.loss.temperature, o.checkpoint.every, o.checkpoint.every_seconds);
  v(opt::Key{"lr", "Adam step of the LoRA adapters"}, o.lr, opt::in(0.0, 1e3));
}
}  // namespace jointnas::search

namespace jointnas::pipeline {

// The run config's `finetune:` section; the same flags on `jointnas finetune`.
struct FinetuneSettings {
  search::FinetuneOptions train;
  int64_t lora_rank = 8;
  int64_t max_tokens = 200000;
  // Early stopping on held-out KL (search/recovery.h): the last `heldout_windows` windows of the
  // training text are held out, evaluated before the first step and every `eval_every` steps, and
  // the adapters of the best evaluation are exported (step 0 included: a finetune never exports a
  // model worse on the held-out windows than the one it started from). eval_every 0: none.
  int64_t eval_every = 20;
  int64_t patience = 3;
  int64_t heldout_windows = 8;
  int64_t heldout_seq_len = 128;
};
template <class V>
void fields(V& v, FinetuneSettings& s) {
  fields(v, s.train);
  v(opt::Key{"lora_rank", "LoRA rank"}, s.lora_rank, opt::in<int64_t>(1, 4096));
  v(opt::Key{"max_tokens", "Tokens of the training text used (0 = all)"}, s.max_tokens, opt::in<int64_t>(0, int64_t(1) << 40));
  v(opt::Key{"eval_every", "Steps between held-out KL evaluations; the best evaluation's adapters (step 0 included) are "
                           "exported (0: no held-out windows, the last step's adapters)"},
    s.eval_every, opt::in<int64_t>(0, 1000000000));
  v(opt::Key{"patience", "Evaluations without a held-out improvement before stopping (0: never stop early)"}, s.patience,
    opt::in<int64_t>(0, 1000000));
  v(opt::Key{"heldout_windows", "Windows at the end of the training text held out for early stopping"}, s.heldout_windows,
    opt::in<int64_t>(1, 1000000));
  v(opt::Key{"heldout_seq_len", "Tokens per held-out window (at most the model's positions)"}, s.heldout_seq_len,
    opt::in<int64_t>(2, 1048576));
}

// `jointnas finetune`.
struct FinetuneStageOptions {
  ModelSettings run;
  opt::Path arch, text, out, space;
  FinetuneSettings finetune;
  int64_t seed = 0;
  std::string target_device;  // whose default formats --space gets (default: --device)
};
template <class V>
void fields(V& v, FinetuneStageOptions& o) {
  fields(v, o.run);
  v(opt::Key{"arch", "arch.json from `jointnas search` or `jointnas arch`: its layer specs are the architecture",
             nullptr, nullptr, true},
    o.arch);
  v(opt::Key{"text", "Training text (distillation data)"}, o.text);
  v(opt::Key{"out", "Export directory", nullptr, nullptr, true}, o.out);
  v(opt::Key{"space", "Optional: the search space YAML the architecture came from, checked against arch.json"},
    o.space);
  fields(v, o.finetune);
  v(opt::Key{"seed", "Seed (data order, LoRA init)"}, o.seed, opt::at_least<int64_t>(0));
  v(opt::Key{"target_device", "cpu | cuda | llama.cpp: as given to `jointnas search` (default: --device)"}, o.target_device,
    target_choices());
}

// Finetunes and exports; returns {out, steps, kd_first, kd_last}.
Json run_finetune_stage(const FinetuneStageOptions& o, const std::atomic<bool>* interrupt);

}  // namespace jointnas::pipeline
