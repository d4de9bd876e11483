#include "jointnas/search/recovery.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

namespace jointnas::search {
namespace {

Json score_json(const HeldoutScore& s) {
  return Json{{"kl", s.kl}, {"nll", s.nll}, {"top1", s.top1}, {"tokens", s.tokens}};
}

}  // namespace

Json RecoveryResult::to_json() const {
  Json c = Json::array();
  for (const RecoveryPoint& p : curve) {
    Json e = score_json(p.score);
    e["step"] = p.step;
    c.push_back(e);
  }
  return Json{{"steps", finetune.steps}, {"kd_first", finetune.first_kd}, {"kd_last", finetune.last_kd},
              {"best_step", best_step},  {"best", score_json(best)},       {"curve", c}};
}

RecoveryResult run_recovery(Supernet& net, const std::vector<int64_t>& train, const HeldoutSet& heldout,
                            FinetuneOptions o, const EarlyStopping& es, ProcessGroup& pg,
                            const std::function<void(const Json&)>& log) {
  JNAS_CHECK_CONFIG(!o.after_step, "run_recovery sets FinetuneOptions::after_step itself; leave it unset");
  JNAS_CHECK_CONFIG(es.eval_every >= 0 && es.patience >= 0 && es.min_delta >= 0,
                    "early stopping: eval_every, patience and min_delta must be >= 0");
  std::vector<at::Tensor> lora;
  for (auto& [n, t] : net.named_lora_parameters()) lora.push_back(t);
  const ArchDist dist = net.one_hot(first_arch(net.space()));
  RecoveryResult r;
  std::vector<at::Tensor> best_lora;
  auto snapshot = [&] {
    best_lora.clear();
    for (const at::Tensor& t : lora) best_lora.push_back(t.detach().clone());
  };
  auto evaluate = [&](int64_t step) {
    const HeldoutScore s = heldout.evaluate(net, dist);
    r.curve.push_back({step, s});
    const bool better = r.curve.size() == 1 || s.kl < r.best.kl * (1 - es.min_delta);
    if (better) {
      r.best = s;
      r.best_step = step;
      snapshot();
    }
    if (log) log(Json{{"heldout_step", step}, {"heldout_kl", s.kl}, {"heldout_nll", s.nll}, {"best_step", r.best_step}});
    return better;
  };
  evaluate(0);
  int64_t since_best = 0, last_eval = 0;
  if (es.eval_every > 0) {
    o.after_step = [&](int64_t done) {
      if (done % es.eval_every != 0) return false;
      last_eval = done;
      since_best = evaluate(done) ? 0 : since_best + 1;
      return es.patience > 0 && since_best >= es.patience;
    };
  }
  r.finetune = run_finetune(net, train, o, pg, log);
  if (r.finetune.steps != last_eval) evaluate(r.finetune.steps);
  if (r.best_step != r.finetune.steps) {
    at::NoGradGuard ng;
    for (size_t i = 0; i < lora.size(); ++i) lora[i].detach().copy_(best_lora[i]);
    JNAS_LOG_INFO("[recovery] restored the adapters of step {} (held-out KL {:.5f}) after {} steps", r.best_step,
                  r.best.kl, r.finetune.steps);
  }
  return r;
}

}  // namespace jointnas::search
