// How the `search` stage chooses the architecture it writes (issue 22, docs/search.md):
//  - portfolio (default): several candidates for the same budget (the exact derivation under
//    measured sensitivity scores, the DNAS argmax after repair, depth only, architecture only),
//    each finetuned briefly with early stopping and compared on held-out KL; the best is returned
//    and arch.json says which won and by how much;
//  - derived: the exact derivation alone (no DNAS run, no finetune);
//  - dnas: the DNAS argmax after repair, as before (the baselines of a study use it).
// The held-out windows are the tail of the training text: the DNAS and every finetune here train on
// the rest, and the evaluation text is never looked at.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/core/options.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/measured_fit.h"
#include "jointnas/search/arch_io.h"
#include "jointnas/search/heldout.h"
#include "jointnas/search/score_table.h"
#include "jointnas/search/supernet.h"

namespace jointnas::pipeline {

enum class Selection { kPortfolio, kDerived, kDnas };
inline const opt::Names<Selection>& selection_names() {
  static const opt::Names<Selection> n{
      {Selection::kPortfolio, "portfolio"}, {Selection::kDerived, "derived"}, {Selection::kDnas, "dnas"}};
  return n;
}

// Keys of the run config's `search:` section (flags of `jointnas search`).
struct SelectionSettings {
  Selection select = Selection::kPortfolio;
  int64_t heldout_windows = 32;   // at the end of the training text
  int64_t heldout_seq_len = 256;  // at most the model's positions
  int64_t candidate_steps = 100;  // finetune steps of each portfolio candidate
  int64_t eval_every = 20;        // held-out evaluations during a candidate's finetune
  int64_t patience = 3;
  int64_t finalists = 3;          // the screen: candidates that get the whole finetune (0: all)
  int64_t screen_steps = 20;      // the screen's finetune steps per candidate
  double candidate_lr = 1e-3;
  bool per_hidden = true;         // sensitivities measured again at every hidden size
  double relax = 1.5;             // the derivation names the next larger architecture up to relax x the budget
  int64_t measured_fit = 4;       // re-derivations against the latency measured on the target (0: trust the table)
  int64_t measure_rounds = 0;     // interleaved timing rounds of the measured fit (0: 1 on CUDA, 15 on the CPU)
  bool uniform_candidates = true;  // depth-only candidates in each uniform format of the space
  double kl_tie = 0.01;            // candidates within this share of the best held-out KL tie
};
template <class V>
void fields(V& v, SelectionSettings& s) {
  v(opt::Key{"select", "portfolio (derived, DNAS, depth-only and architecture-only candidates, finetuned briefly, "
                       "best held-out KL wins) | derived (exact derivation under sensitivity scores) | dnas (the DNAS "
                       "argmax)"},
    s.select, selection_names());
  v(opt::Key{"heldout_windows", "Windows at the end of the training text held out for scores and the portfolio"},
    s.heldout_windows, opt::in<int64_t>(1, 1 << 20));
  v(opt::Key{"heldout_seq_len", "Tokens per held-out window (at most the model's positions)"}, s.heldout_seq_len,
    opt::in<int64_t>(2, 1 << 20));
  v(opt::Key{"candidate_steps", "Finetune steps of each portfolio candidate (0: compare the cut models)"},
    s.candidate_steps, opt::in<int64_t>(0, 10000000));
  v(opt::Key{"eval_every", "Held-out evaluation every N candidate finetune steps (0: at the end only)"}, s.eval_every,
    opt::in<int64_t>(0, 10000000));
  v(opt::Key{"patience", "Held-out evaluations without improvement before a candidate's finetune stops"}, s.patience,
    opt::in<int64_t>(0, 1000000));
  v(opt::Key{"finalists", "Portfolio screen: with more distinct candidates than this, each is finetuned "
                          "screen_steps first and only this many (and any within kl_tie of the best) get "
                          "candidate_steps (0: every candidate gets them)"},
    s.finalists, opt::in<int64_t>(0, 1000));
  v(opt::Key{"screen_steps", "Finetune steps of each candidate in the portfolio's screen"}, s.screen_steps,
    opt::in<int64_t>(1, 10000000));
  v(opt::Key{"candidate_lr", "Adam step of the candidates' LoRA adapters"}, s.candidate_lr, opt::in(0.0, 1e3));
  v(opt::Key{"per_hidden", "Measure the per-layer sensitivities again at every hidden size"}, s.per_hidden);
  v(opt::Key{"relax", "Name the next larger architecture when it costs at most this multiple of the budget"}, s.relax,
    opt::in(1.0, 100.0));
  v(opt::Key{"measured_fit", "Times each candidate on the target (random weights, interleaved with the original) and "
                             "derives it again at a rescaled table budget this many times, until it measures within "
                             "97-100 % of the latency budget (0: trust the table)"},
    s.measured_fit, opt::in<int64_t>(0, 20));
  v(opt::Key{"measure_rounds", "Interleaved timing rounds of the measured fit (0: 1 on CUDA, 15 on the CPU)"},
    s.measure_rounds, opt::in<int64_t>(0, 100));
  v(opt::Key{"uniform_candidates", "Portfolio candidates that drop blocks with every linear in one format, one per "
                                   "format the whole space offers"},
    s.uniform_candidates);
  v(opt::Key{"kl_tie", "Candidates whose held-out KL is within this share of the best one tie; the tie goes to the "
                   "fewest quantized linears (docs/search.md)"},
    s.kl_tie, opt::in(0.0, 1.0));
}

// What the selection works with; every pointer outlives the call.
struct SelectionInputs {
  const model::Checkpoint* ckpt = nullptr;
  const search::CostContext* cc = nullptr;  // the searched space
  search::Budget budget;
  const std::vector<int64_t>* train = nullptr;
  const search::HeldoutSet* heldout = nullptr;
  search::SupernetOptions supernet;         // device, dtype, mixing, LoRA rank of the candidates
  int64_t batch = 4, seq_len = 128;         // finetune windows of the candidates
  uint64_t seed = 0;
  std::string scores_path;                  // cache of the sensitivity scores ("" : none)
  Json scores_identity;                     // what a cached score table must match to be reused
  const search::DnasResult* dnas = nullptr;  // the DNAS result, a candidate when set
  // The measured fit (s.measured_fit > 0 and a latency budget): the budget as measured and the
  // target's runtime; without `measured` the table is trusted.
  const MeasuredBudget* measured = nullptr;
  model::RuntimeOptions target;
  // With `measured`: the architecture of its limit model (a matched point's baseline), a
  // candidate as it is ("matched").
  std::optional<search::Arch> matched;
};

struct Selected {
  search::Arch arch;
  profile::Cost predicted;
  std::string winner;  // "derived", "dnas", "depth_only", "arch_only"
  Json record;         // arch.json's "selection" (derivation, candidates, winner, margin)
};

// The sensitivity scores of the searched space: read from `in.scores_path` when it holds a table
// of the same identity, else measured on the held-out windows and written there.
search::ScoreTable sensitivity_scores(const SelectionSettings& s, const SelectionInputs& in);

// Chooses the architecture (s.select is portfolio or derived). ConfigError when no architecture
// of the space meets the budget.
Selected select_architecture(const SelectionSettings& s, const SelectionInputs& in);

}  // namespace jointnas::pipeline
