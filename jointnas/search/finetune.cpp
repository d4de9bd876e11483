#include "jointnas/search/finetune.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <ATen/ATen.h>

#include "jointnas/core/error.h"
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
  for (int64_t step = 0; step < o.steps; ++step) {
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
  }
  const size_t tenth = std::max<size_t>(1, kds.size() / 10);
  for (size_t i = 0; i < tenth; ++i) {
    r.first_kd += kds[i] / static_cast<double>(tenth);
    r.last_kd += kds[kds.size() - 1 - i] / static_cast<double>(tenth);
  }
  r.steps = o.steps;
  return r;
}

}  // namespace jointnas::search
