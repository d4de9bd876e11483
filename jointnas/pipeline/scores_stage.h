// The `scores` stage (`jointnas scores`): the per-decision sensitivity scores the search's exact
// derivation minimises (search/sensitivity.h), measured on held-out windows of the training text
// and written as scores.json; with `validate`, N random architectures of the space are finetuned
// like portfolio candidates and evaluated on separate text, and the rank correlation of their
// scores with their measured KL is reported (docs/search.md, "Selecting the architecture").
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/selection.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct ScoresOptions {
  ModelSettings run;
  opt::Path space, table, text, importance, out, eval_text, validate_out;
  profile::Workload workload;
  std::string target_device;
  SelectionSettings selection;  // held-out windows, per_hidden, candidate finetune
  int64_t lora_rank = 8, batch = 4, seq_len = 128, max_tokens = 200000;
  int64_t validate = 0, eval_windows = 64;
  uint64_t seed = 0;
};
template <class V>
void fields(V& v, ScoresOptions& o) {
  fields(v, o.run);
  v(opt::Key{"space", "Search space YAML", nullptr, nullptr, true}, o.space);
  v(opt::Key{"table", "Latency table of the target device and workload (the candidates' predicted cost)", nullptr,
             nullptr, true},
    o.table);
  fields(v, o.workload);
  v(opt::Key{"text", "Training text: its last held-out windows score, the rest trains", nullptr, nullptr, true}, o.text);
  v(opt::Key{"importance", "importance.json of the (permuted) model: the depth order"}, o.importance);
  v(opt::Key{"out", "scores.json to write (reused when it holds the same measurement)", nullptr, nullptr, true}, o.out);
  v(opt::Key{"target_device", "cpu | cuda | llama.cpp: whose formats the space defaults to (default: --device)"}, o.target_device,
    target_choices());
  fields(v, o.selection);
  v(opt::Key{"lora_rank", "LoRA rank of the validation finetunes"}, o.lora_rank, opt::in<int64_t>(1, 4096));
  v(opt::Key{"batch", "Windows per validation finetune step", "train-batch"}, o.batch, opt::in<int64_t>(1, 1 << 16));
  v(opt::Key{"seq_len", "Tokens per validation finetune window"}, o.seq_len, opt::in<int64_t>(2, 1 << 20));
  v(opt::Key{"max_tokens", "Tokens of the training text used (0 = all)"}, o.max_tokens, opt::in<int64_t>(0, int64_t(1) << 40));
  v(opt::Key{"validate", "Finetune N random architectures; Spearman of score against their measured KL"}, o.validate,
    opt::in<int64_t>(0, 100000));
  v(opt::Key{"eval_text", "Evaluation text of the validation (never trained on)"}, o.eval_text);
  v(opt::Key{"eval_windows", "Evaluation windows of the validation"}, o.eval_windows, opt::in<int64_t>(1, 1 << 20));
  v(opt::Key{"validate_out", "JSON with every validation point"}, o.validate_out);
  v(opt::Key{"seed", "Seed (validation samples, LoRA init, data order)"}, o.seed);
}

// Returns {scores, evaluations, validation: {points, spearman_after_finetune, spearman_before_finetune}}.
Json run_scores(const ScoresOptions& o);

}  // namespace jointnas::pipeline
