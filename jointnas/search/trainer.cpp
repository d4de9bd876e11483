// The training loops' shared parts; see trainer.h.
#include "jointnas/search/trainer.h"

#include <sstream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"

namespace jointnas::search {

at::Tensor cut_windows(const std::vector<int64_t>& tokens, int64_t seq_len) {
  const int64_t n = static_cast<int64_t>(tokens.size()) / seq_len;
  return at::tensor(tokens, at::kLong).narrow(0, 0, n * seq_len).view({n, seq_len});
}

at::Tensor BatchSampler::draw(const at::Tensor& windows, int64_t batch, const ProcessGroup& pg) {
  std::vector<int64_t> rows;
  std::uniform_int_distribution<int64_t> pick(0, windows.size(0) - 1);
  for (int64_t i = 0; i < batch * pg.world_size(); ++i) rows.push_back(pick(rng_));
  const std::vector<int64_t> mine(rows.begin() + batch * pg.rank(), rows.begin() + batch * (pg.rank() + 1));
  return windows.index_select(0, at::tensor(mine, at::kLong));
}

std::string BatchSampler::state() const {
  std::ostringstream s;
  s << rng_;
  return s.str();
}

void BatchSampler::restore(const std::string& state, const std::string& source) {
  std::istringstream s(state);
  s >> rng_;
  JNAS_CHECK_IO(!s.fail(), "{}: unreadable data_rng", source);
}

at::Tensor distillation_loss(const Supernet& net, const at::Tensor& ids, const ArchDist& dist,
                             const HeadLossOptions& o) {
  const at::Tensor teacher = net.teacher_hidden(ids);
  const at::Tensor h = net.hidden(ids, dist);
  return head_loss(h.reshape({-1, h.size(-1)}), net.lm_head().detach(), teacher.reshape({-1, teacher.size(-1)}), {}, o);
}

void adam_step(Adam& opt, const at::Tensor& loss, ProcessGroup& pg) {
  loss.backward();
  std::vector<at::Tensor> grads;
  for (auto& p : opt.params) grads.push_back(p.grad());
  pg.all_reduce_mean(grads);
  opt.step();
}

void put_adam(std::map<std::string, at::Tensor>& t, const std::string& prefix, const Adam& a) {
  CheckpointDir::put(t, prefix, a.params);
  CheckpointDir::put(t, prefix + "_m", a.m);
  CheckpointDir::put(t, prefix + "_v", a.v);
}

void get_adam(const CheckpointDir::Loaded& l, const std::string& prefix, Adam& a) {
  CheckpointDir::get(l, prefix, a.params);
  CheckpointDir::get(l, prefix + "_m", a.m);
  CheckpointDir::get(l, prefix + "_v", a.v);
}

void run_steps(const CheckpointDir& ckpt, int64_t start, int64_t steps, const char* what,
               const std::function<bool(int64_t)>& body, const std::function<void(int64_t)>& save) {
  for (int64_t step = start; step < steps; ++step) {
    yield_to_timing();  // a search of the same study timing on this machine: wait
    const bool stop = body(step);
    const bool interrupted = ckpt.interrupted();
    if (ckpt.due(step + 1, stop || step + 1 == steps)) save(step + 1);
    if (stop) break;
    if (interrupted && step + 1 < steps) {
      throw Interrupted(fmt::format("{} interrupted after step {}{}", what, step + 1,
                                    !ckpt.enabled() ? " (no checkpoint directory: the progress is lost)"
                                                    : "; checkpoint written, run the same command again to resume"));
    }
  }
}

}  // namespace jointnas::search
