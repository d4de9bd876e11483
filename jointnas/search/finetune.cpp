// Recovery finetuning; see finetune.h. The loop's skeleton is search/trainer.h, shared with the
// search.
#include "jointnas/search/finetune.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include <ATen/ATen.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/search/trainer.h"

namespace jointnas::search {
namespace {

// Resumes from the committed checkpoint of this finetune, if any; a checkpoint of another one in
// the directory is stale and removed. Returns the step to continue from.
int64_t restore(CheckpointDir& ckpt, const Json& identity, Adam& opt, BatchSampler& sampler, std::vector<double>& kds,
                const FinetuneOptions& o) {
  auto l = ckpt.load_latest(std::numeric_limits<int64_t>::max());
  if (l && l->meta.value("identity", Json()) != identity) {
    JNAS_LOG_WARN("[finetune] {} belongs to another finetune ({}); starting over", l->json_path,
                  l->meta.value("identity", Json()).dump());
    JNAS_CHECK_IO(remove_tree(o.checkpoint.dir), "cannot remove the stale checkpoint {}", o.checkpoint.dir);
    l.reset();
    ckpt.load_latest(0);  // recreates the directory
  }
  if (!l) return 0;
  get_adam(*l, "lora", opt);
  opt.t = get_int(l->meta, "t", l->json_path).value_or(0);
  sampler.restore(get_string(l->meta, "data_rng", l->json_path).value_or(""), l->json_path);
  kds = get_numbers(l->meta, "kd_history", l->json_path);
  JNAS_CHECK_IO(l->step <= o.steps && static_cast<int64_t>(kds.size()) == l->step,
                "{}: step {} of {} with {} kd_history entries; remove {} to start over", l->json_path, l->step, o.steps,
                kds.size(), o.checkpoint.dir);
  JNAS_LOG_INFO("[finetune] resuming from {} at step {}", l->json_path, l->step);
  if (o.checkpoint.on_resume) o.checkpoint.on_resume(l->step);
  return l->step;
}

}  // namespace

FinetuneResult run_finetune(Supernet& net, const std::vector<int64_t>& tokens, const FinetuneOptions& o,
                            ProcessGroup& pg, const std::function<void(const Json&)>& log) {
  JNAS_CHECK_CONFIG(net.named_arch_parameters().empty(),
                    "finetune: the supernet must be restricted to one architecture (restrict_to)");
  JNAS_CHECK_CONFIG(o.steps >= 0 && o.batch > 0 && o.seq_len > 1, "finetune: steps >= 0, batch > 0, seq_len > 1");
  std::vector<at::Tensor> lora;
  std::vector<std::pair<std::string, at::Tensor>> guarded;  // for the NaN/Inf guard
  for (auto& [n, t] : net.named_lora_parameters()) {
    lora.push_back(t);
    guarded.emplace_back(n, t);
  }
  FinetuneResult r;
  if (o.steps == 0) return r;
  JNAS_CHECK_CONFIG(!lora.empty(), "finetune: {} steps need LoRA adapters (lora_rank > 0)", o.steps);
  const at::Tensor windows = cut_windows(tokens, o.seq_len);
  JNAS_CHECK_CONFIG(windows.size(0) >= o.batch, "finetune: {} tokens make {} windows of {}; need at least {}",
                    tokens.size(), windows.size(0), o.seq_len, o.batch);
  const ArchDist dist = net.one_hot(first_arch(net.space()));
  Adam opt(lora, o.lr);
  BatchSampler sampler(o.seed);
  std::vector<double> kds;

  CheckpointDir ckpt(o.checkpoint, "jointnas-finetune-checkpoint");
  // What a checkpoint must match to be resumed: the architecture (widths and formats), the data
  // order and the schedule. A checkpoint of anything else in this directory is stale: start over.
  const Json identity{{"arch", first_arch(net.space()).to_json(net.space())}, {"seed", o.seed},
                      {"adapters", guarded.size()}, {"steps", o.steps}, {"batch", o.batch}, {"seq_len", o.seq_len},
                      {"lr", o.lr}};
  const int64_t start = restore(ckpt, identity, opt, sampler, kds, o);
  auto step_fn = [&](int64_t step) {
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor ids = sampler.draw(windows, o.batch, pg);
    opt.zero_grad();
    const at::Tensor out = distillation_loss(net, ids, dist, o.loss);
    check_finite(out, step, "finetune", guarded, o.checkpoint.dir);
    adam_step(opt, out[0], pg);
    const double kd = out[1].item<double>();
    kds.push_back(kd);
    if (log) {
      log(Json{{"step", step}, {"kd", kd}, {"top1_agreement", out[3].item<double>()},
               {"ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()}});
    }
    return o.after_step && o.after_step(step + 1);
  };
  auto save = [&](int64_t next_step) {
    std::map<std::string, at::Tensor> t;
    put_adam(t, "lora", opt);
    ckpt.save(next_step, t, Json{{"identity", identity}, {"t", opt.t}, {"data_rng", sampler.state()}, {"kd_history", kds}});
  };
  run_steps(ckpt, start, o.steps, "finetune", step_fn, save);
  const size_t tenth = std::max<size_t>(1, kds.size() / 10);
  for (size_t i = 0; i < tenth; ++i) {
    r.first_kd += kds[i] / static_cast<double>(tenth);
    r.last_kd += kds[kds.size() - 1 - i] / static_cast<double>(tenth);
  }
  r.steps = static_cast<int64_t>(kds.size());
  return r;
}

}  // namespace jointnas::search
