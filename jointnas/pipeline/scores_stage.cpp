// The `scores` stage; see scores_stage.h.
#include "jointnas/pipeline/scores_stage.h"

#include <random>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "jointnas/compress/importance.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/sensitivity.h"

namespace jointnas::pipeline {
namespace {

// Finetunes `n` random architectures like portfolio candidates; each one's score against its KL on
// `eval` before and after the finetune.
Json validate(const ScoresOptions& o, const model::Checkpoint& ck, const search::CostContext& cc,
              const search::ScoreTable& scores, const search::TokenSplit& split, const search::HeldoutSet& held,
              const search::SupernetOptions& so, const std::vector<int64_t>& eval_stream) {
  const int64_t len = held.seq_len();
  const search::HeldoutSet eval(eval_stream, len, o.eval_windows, 4);
  search::PortfolioOptions po;
  po.finetune.steps = o.selection.candidate_steps;
  po.finetune.batch = o.batch;
  po.finetune.seq_len = std::min(o.seq_len, ck.config.max_position_embeddings);
  po.finetune.lr = o.selection.candidate_lr;
  po.finetune.seed = o.seed;
  po.early.eval_every = o.selection.eval_every;
  po.early.patience = o.selection.patience;
  po.supernet = so;
  po.supernet.lora_rank = o.lora_rank;
  std::mt19937_64 rng(o.seed);
  std::vector<double> predicted, before, after;
  Json points = Json::array();
  for (int64_t i = 0; i < o.validate; ++i) {
    const search::Arch a = search::random_arch(*cc.space, rng);
    const search::CandidateResult r =
        search::finetune_candidate(ck, cc, {fmt::format("random{}", i), a}, split.train, held, po, {}, &eval);
    predicted.push_back(scores.score(*cc.space, a, cc.block_rank));
    before.push_back(r.eval_before.kl);
    after.push_back(r.eval_after.kl);
    points.push_back(Json{{"architecture", a.to_json(*cc.space)}, {"score", predicted.back()},
                          {"eval_kl_before", before.back()}, {"eval_kl_after", after.back()},
                          {"eval_nll_after", r.eval_after.nll}, {"heldout_kl_after", r.recovery.best.kl},
                          {"finetune_steps", r.recovery.finetune.steps}, {"best_step", r.recovery.best_step}});
    JNAS_LOG_INFO("[scores] validation {}/{}: score {:.5f}, evaluation KL {:.5f} -> {:.5f}", i + 1, o.validate,
                  predicted.back(), before.back(), after.back());
  }
  return Json{{"architectures", o.validate},
              {"spearman_after_finetune", search::spearman(predicted, after)},
              {"spearman_before_finetune", search::spearman(predicted, before)},
              {"points", points}};
}

}  // namespace

Json run_scores(const ScoresOptions& o) {
  JNAS_CHECK_CONFIG(o.validate == 0 || !o.eval_text.empty(), "scores: --validate needs --eval-text (held-out text)");
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::Checkpoint ck = model::load_checkpoint(o.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const search::SearchSpace space =
      search::SearchSpace::from_yaml_file(o.space, cfg, target_device_name(o.target_device, ro));
  const std::vector<int64_t> rank =
      o.importance.empty() ? std::vector<int64_t>{} : compress::load_block_rank(o.importance, cfg.num_hidden_layers);
  const profile::LatencyTable table = profile::LatencyTable::load(o.table);
  search::CostContext cc{&cfg, &space, rank, &table, o.workload, static_cast<int64_t>(at::elementSize(ro.dtype))};
  const auto tok = load_tokenizer_for(o.run.model, cfg.vocab_size);
  const int64_t len = std::min(o.selection.heldout_seq_len, cfg.max_position_embeddings);
  const search::TokenSplit split = search::split_heldout(data::load_token_stream(o.text, *tok, cfg, o.max_tokens),
                                                         o.selection.heldout_windows, len, o.batch);
  const search::HeldoutSet held(split.heldout, len, 0, 4);
  search::SupernetOptions so;
  so.device = ro.device;
  so.dtype = ro.dtype;
  SelectionInputs in;
  in.ckpt = &ck;
  in.cc = &cc;
  in.heldout = &held;
  in.supernet = so;
  in.seed = o.seed;
  in.scores_path = o.out;
  in.scores_identity = Json{{"model", o.run.model.str()}, {"text", o.text.str()}, {"max_tokens", o.max_tokens}};
  const search::ScoreTable scores = sensitivity_scores(o.selection, in);
  Json out{{"scores", o.out.str()}, {"evaluations", search::sensitivity_evaluations(space, {o.selection.per_hidden})}};
  if (o.validate > 0) {
    Json v = validate(o, ck, cc, scores, split, held, so, data::load_token_stream(o.eval_text, *tok, cfg, o.eval_windows * len));
    if (!o.validate_out.empty()) write_file_atomic(o.validate_out, v.dump(1) + "\n");
    v.erase("points");
    out["validation"] = v;
  }
  return out;
}

}  // namespace jointnas::pipeline
