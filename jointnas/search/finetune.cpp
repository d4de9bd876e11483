#include "jointnas/search/finetune.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <sstream>

#include <ATen/ATen.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/search/adam.h"

namespace jointnas::search {

FinetuneResult run_finetune(Supernet& net, const std::vector<int64_t>& tokens, const FinetuneOptions& o,
                            ProcessGroup& pg, const std::function<void(const Json&)>& log) {
  JNAS_CHECK_CONFIG(net.named_arch_parameters().empty(),
                    "finetune: the supernet must be restricted to one architecture (restrict_to)");
  JNAS_CHECK_CONFIG(o.steps >= 0 && o.batch > 0 && o.seq_len > 1, "finetune: steps >= 0, batch > 0, seq_len > 1");
  std::vector<at::Tensor> lora;
  for (auto& [n, t] : net.named_lora_parameters()) lora.push_back(t);
  FinetuneResult r;
  if (o.steps == 0) return r;
  JNAS_CHECK_CONFIG(!lora.empty(), "finetune: {} steps need LoRA adapters (lora_rank > 0)", o.steps);
  const int64_t nwin = static_cast<int64_t>(tokens.size()) / o.seq_len;
  JNAS_CHECK_CONFIG(nwin >= o.batch, "finetune: {} tokens make {} windows of {}; need at least {}", tokens.size(), nwin,
                    o.seq_len, o.batch);
  const at::Tensor windows = at::tensor(tokens, at::kLong).narrow(0, 0, nwin * o.seq_len).view({nwin, o.seq_len});
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, nwin - 1);
  const ArchDist dist = net.one_hot(first_arch(net.space()));
  const at::Tensor head = net.lm_head().detach();
  Adam opt(lora, o.lr);
  std::vector<double> kds;
  std::vector<std::pair<std::string, at::Tensor>> guarded;
  for (auto& [n, t] : net.named_lora_parameters()) guarded.emplace_back(n, t);

  CheckpointDir ckpt(o.checkpoint, "jointnas-finetune-checkpoint");
  // What a checkpoint must match to be resumed: the architecture (widths and formats), the data
  // order and the schedule. A checkpoint of anything else in this directory is stale: start over.
  const Json identity{{"arch", first_arch(net.space()).to_json(net.space())}, {"seed", o.seed},
                      {"adapters", guarded.size()}, {"steps", o.steps}, {"batch", o.batch}, {"seq_len", o.seq_len},
                      {"lr", o.lr}};
  int64_t start = 0;
  auto l = ckpt.load_latest(std::numeric_limits<int64_t>::max());
  if (l && l->meta.value("identity", Json()) != identity) {
    JNAS_LOG_WARN("[finetune] {} belongs to another finetune ({}); starting over", l->json_path,
                  l->meta.value("identity", Json()).dump());
    JNAS_CHECK_IO(remove_tree(o.checkpoint.dir), "cannot remove the stale checkpoint {}", o.checkpoint.dir);
    l.reset();
    ckpt.load_latest(0);  // recreates the directory
  }
  if (l) {
    CheckpointDir::get(*l, "lora", lora);
    CheckpointDir::get(*l, "lora_m", opt.m);
    CheckpointDir::get(*l, "lora_v", opt.v);
    opt.t = l->meta.value("t", int64_t{0});
    std::istringstream rs(l->meta.value("data_rng", std::string()));
    rs >> rng;
    JNAS_CHECK_IO(!rs.fail(), "{}: unreadable data_rng", l->json_path);
    kds = l->meta.value("kd_history", std::vector<double>{});
    JNAS_CHECK_IO(l->step <= o.steps && static_cast<int64_t>(kds.size()) == l->step,
                  "{}: step {} of {} with {} kd_history entries; remove {} to start over", l->json_path, l->step,
                  o.steps, kds.size(), o.checkpoint.dir);
    start = l->step;
    JNAS_LOG_INFO("[finetune] resuming from {} at step {}", l->json_path, start);
    if (o.checkpoint.on_resume) o.checkpoint.on_resume(start);
  }
  auto save = [&](int64_t next_step) {
    std::map<std::string, at::Tensor> t;
    CheckpointDir::put(t, "lora", lora);
    CheckpointDir::put(t, "lora_m", opt.m);
    CheckpointDir::put(t, "lora_v", opt.v);
    std::ostringstream rs;
    rs << rng;
    ckpt.save(next_step, t, Json{{"identity", identity}, {"t", opt.t}, {"data_rng", rs.str()}, {"kd_history", kds}});
  };
  for (int64_t step = start; step < o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < o.batch * pg.world_size(); ++i) rows.push_back(pick(rng));
    std::vector<int64_t> mine(rows.begin() + o.batch * pg.rank(), rows.begin() + o.batch * (pg.rank() + 1));
    const at::Tensor ids = windows.index_select(0, at::tensor(mine, at::kLong));
    opt.zero_grad();
    const at::Tensor teacher = net.teacher_hidden(ids);
    const at::Tensor h = net.hidden(ids, dist);
    const at::Tensor out =
        head_loss(h.reshape({-1, h.size(-1)}), head, teacher.reshape({-1, teacher.size(-1)}), {}, o.loss);
    check_finite(out, step, "finetune", guarded, o.checkpoint.dir);
    out[0].backward();
    std::vector<at::Tensor> grads;
    for (auto& p : lora) grads.push_back(p.grad());
    pg.all_reduce_mean(grads);
    opt.step();
    const double kd = out[1].item<double>();
    kds.push_back(kd);
    if (log) {
      log(Json{{"step", step}, {"kd", kd}, {"top1_agreement", out[3].item<double>()},
               {"ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()}});
    }
    const bool stop = o.after_step && o.after_step(step + 1);
    const bool interrupted = ckpt.interrupted();
    if (ckpt.due(step + 1, stop || step + 1 == o.steps)) save(step + 1);
    if (stop) break;
    if (interrupted && step + 1 < o.steps) {
      throw Interrupted(fmt::format("finetune interrupted after step {}{}", step + 1,
                                    !ckpt.enabled() ? " (no checkpoint directory: the progress is lost)"
                                                    : "; checkpoint written, run the same command again to resume"));
    }
  }
  const size_t tenth = std::max<size_t>(1, kds.size() / 10);
  for (size_t i = 0; i < tenth; ++i) {
    r.first_kd += kds[i] / static_cast<double>(tenth);
    r.last_kd += kds[kds.size() - 1 - i] / static_cast<double>(tenth);
  }
  r.steps = static_cast<int64_t>(kds.size());
  return r;
}

}  // namespace jointnas::search
