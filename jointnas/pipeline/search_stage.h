// The `search` stage: the differentiable joint search (search/dnas.h) over a model, a search space,
// a latency table and budgets, then the selection of the architecture (pipeline/selection.h: exact
// derivation and candidate portfolio); writes arch.json, search_log.jsonl and scores.json into its
// output directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/selection.h"
#include "jointnas/pipeline/settings.h"
#include "jointnas/search/dnas.h"

namespace jointnas::search {

inline const opt::Names<Relaxation>& relaxation_names() {
  static const opt::Names<Relaxation> n{
      {Relaxation::kGumbel, "gumbel"}, {Relaxation::kHard, "hard"}, {Relaxation::kSoftmax, "softmax"}};
  return n;
}
inline const opt::Names<Mixing>& mixing_names() {
  static const opt::Names<Mixing> n{{Mixing::kFactorized, "factorized"},
                                    {Mixing::kDenseMask, "dense_mask"},
                                    {Mixing::kLoop, "loop"},
                                    {Mixing::kPlain, "plain"}};
  return n;
}

// The knobs of the DNAS loop a user may set (the rest of DnasOptions is wired by the stage).
template <class V>
void fields(V& v, DnasOptions& o) {
  v(opt::Key{"steps", "Alternating steps (each: one LoRA update, one architecture update)"}, o.steps,
    opt::in<int64_t>(0, 10000000));
  pipeline::training_fields(v, o.batch, o.seq_len, o.loss.temperature, o.checkpoint.every, o.checkpoint.every_seconds);
  v(opt::Key{"relaxation", "gumbel | hard | softmax"}, o.relaxation, relaxation_names());
  v(opt::Key{"tau", "Initial Gumbel temperature"}, o.tau_start, opt::in(1e-6, 1e6));
  v(opt::Key{"tau_end", "Final Gumbel temperature"}, o.tau_end, opt::in(1e-6, 1e6));
  v(opt::Key{"lr_arch", "Adam step of the architecture logits"}, o.lr_arch, opt::in(0.0, 1e3));
  v(opt::Key{"lr_lora", "Adam step of the LoRA adapters"}, o.lr_lora, opt::in(0.0, 1e3));
  v(opt::Key{"penalty", "Budget penalty weight"}, o.penalty_weight, opt::in(0.0, 1e9));
  v(opt::Key{"penalty_form", "target (spend the primary budget) | hinge (only excess)"}, o.penalty_form,
    opt::Choices{"target", "hinge"});
  v(opt::Key{"entropy_weight", "Final weight of the entropy ramp"}, o.entropy_weight, opt::in(0.0, 1e9));
  v(opt::Key{"entropy_threshold", "Per-decision normalised entropy below which it freezes"}, o.entropy_threshold,
    opt::in(0.0, 1.0));
  v(opt::Key{"stop_entropy", "Mean normalised entropy that ends the search"}, o.stop_entropy, opt::in(0.0, 1.0));
  v(opt::Key{"warmup", "LoRA-only steps first"}, o.warmup_steps, opt::in<int64_t>(0, 10000000));
}

}  // namespace jointnas::search

namespace jointnas::pipeline {

// The run config's `search:` section; the same flags on `jointnas search`.
struct SearchSettings {
  search::DnasOptions dnas;
  int64_t lora_rank = 8;
  search::Mixing mixing = search::Mixing::kFactorized;
  int64_t max_tokens = 200000;
  SelectionSettings selection;
};
template <class V>
void fields(V& v, SearchSettings& s) {
  fields(v, s.dnas);
  v(opt::Key{"lora_rank", "LoRA rank (0: frozen weights)"}, s.lora_rank, opt::in<int64_t>(0, 4096));
  v(opt::Key{"mixing", "factorized | dense_mask | loop"}, s.mixing, search::mixing_names());
  v(opt::Key{"max_tokens", "Tokens of the training text used (0 = all)"}, s.max_tokens, opt::in<int64_t>(0, int64_t(1) << 40));
  fields(v, s.selection);
}

// `jointnas search`.
struct SearchOptions {
  ModelSettings run;
  opt::Path space, table, text, out, importance, scores;
  profile::Workload workload;
  BudgetSettings budget;
  SearchSettings search;
  uint64_t seed = 0;
  bool frozen_weights = false;
  std::string target_device;         // whose default formats the space gets (default: --device)
  std::vector<std::string> formats;  // search only these formats (bf16: architecture only)
  opt::Path fix_arch;                // arch.json whose structure is kept: precision only
  bool clamp_budget = false;         // a latency budget below the space's reach becomes that reach
  opt::Path latency_of;              // arch.json of a model the result may not be slower than (measured fit)
};
template <class V>
void fields(V& v, SearchOptions& o) {
  fields(v, o.run);
  v(opt::Key{"space", "Search space YAML (docs/search.md)", nullptr, nullptr, true}, o.space);
  v(opt::Key{"table", "Latency table from `jointnas profile` for this space and workload", nullptr, nullptr, true},
    o.table);
  v(opt::Key{"text", "Training text (distillation data), e.g. wikitext2 train", nullptr, nullptr, true}, o.text);
  v(opt::Key{"out", "Output directory (arch.json, search_log.jsonl)", nullptr, nullptr, true}, o.out);
  v(opt::Key{"importance", "importance.json of the (permuted) model: the depth order"}, o.importance);
  v(opt::Key{"scores", "Sensitivity scores (`jointnas scores`): reused when measured on the same model, text and "
                       "space, else measured and written there (default: OUT/scores.json)"},
    o.scores);
  fields(v, o.workload);
  fields(v, o.budget);
  fields(v, o.search);
  v(opt::Key{"seed", "Seed (data order, Gumbel noise, LoRA init)"}, o.seed);
  v(opt::Key{"frozen_weights", "Architecture updates only"}, o.frozen_weights);
  v(opt::Key{"target_device", "cpu | cuda | llama.cpp: the device the table was measured on, whose formats the space defaults "
                              "to (default: --device)"},
    o.target_device, target_choices());
  v(opt::Key{"formats", "Search only these formats (comma list; bf16 = architecture only)"}, o.formats);
  v(opt::Key{"fix_arch", "Keep this arch.json's structure; search precision only"}, o.fix_arch);
  v(opt::Key{"clamp_budget", "A latency budget below what the space reaches becomes that reach (with a warning) "
                             "instead of an error"},
    o.clamp_budget);
  v(opt::Key{"latency_of", "arch.json of a model of this space the result may not be slower than: the measured fit "
                           "times it beside every candidate in the same rounds (with a relative --latency, its "
                           "measured share, as the table's first aim)"},
    o.latency_of);
}

// The budget of `b` in absolute units; "0.6x" is a fraction of `dense_latency_ms`. ConfigError
// when no budget is set.
search::Budget resolve_budget(const BudgetSettings& b, double dense_latency_ms);

// Runs the search; returns the summary (arch path, predicted / dense cost, budget, repairs).
// `interrupt`: set by SIGINT / SIGTERM, the search checkpoints and throws Interrupted.
Json run_search(const SearchOptions& o, const std::atomic<bool>* interrupt);

}  // namespace jointnas::pipeline
