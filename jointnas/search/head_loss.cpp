#include "jointnas/search/head_loss.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <fmt/ranges.h>

#include "jointnas/core/error.h"

namespace jointnas::search {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType wide(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// Per chunk: the student's tempered log-probabilities, the teacher's probabilities and the plain
// log-probabilities for the cross entropy.
struct Chunk {
  at::Tensor logp_s_t, p_t, logp_s;  // [n, V]
};

Chunk chunk_terms(const at::Tensor& h, const at::Tensor& head, const at::Tensor& th, double T, bool kd, bool ce) {
  Chunk c;
  const at::Tensor z = at::matmul(h, head.t()).to(wide(h));
  if (kd) {
    c.logp_s_t = at::log_softmax(z / T, -1);
    c.p_t = at::softmax(at::matmul(th, head.t()).to(wide(h)) / T, -1);
  }
  if (ce) c.logp_s = T == 1.0 && kd ? c.logp_s_t : at::log_softmax(z, -1);
  return c;
}

class HeadLossFn : public torch::autograd::Function<HeadLossFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& head,
                            const at::Tensor& teacher, const at::Tensor& targets, HeadLossOptions o) {
    at::NoGradGuard no_grad;
    const int64_t N = hidden.size(0);
    const bool kd = o.kd_weight != 0.0, ce = o.ce_weight != 0.0;
    double kd_sum = 0, ce_sum = 0, agree = 0;
    for (int64_t r = 0; r < N; r += o.chunk_rows) {
      const int64_t n = std::min(o.chunk_rows, N - r);
      const at::Tensor th = kd ? teacher.narrow(0, r, n) : at::Tensor();
      Chunk c = chunk_terms(hidden.narrow(0, r, n), head, th, o.temperature, kd, ce);
      if (kd) {
        kd_sum += (c.p_t * (at::log(c.p_t.clamp_min(1e-300)) - c.logp_s_t)).sum().item<double>();
        agree += (c.logp_s_t.argmax(-1) == c.p_t.argmax(-1)).sum().item<double>();
      }
      if (ce) ce_sum -= c.logp_s.gather(1, targets.narrow(0, r, n).unsqueeze(1)).sum().item<double>();
    }
    const double kdv = o.temperature * o.temperature * kd_sum / static_cast<double>(N);
    const double cev = ce_sum / static_cast<double>(N);
    ctx->save_for_backward({hidden, head, teacher, targets});
    ctx->saved_data["T"] = o.temperature;
    ctx->saved_data["kd_w"] = o.kd_weight;
    ctx->saved_data["ce_w"] = o.ce_weight;
    ctx->saved_data["chunk"] = o.chunk_rows;
    return at::tensor({o.kd_weight * kdv + o.ce_weight * cev, kdv, cev, agree / static_cast<double>(N)},
                      at::TensorOptions().dtype(wide(hidden)).device(hidden.device()));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &head = saved[1], &teacher = saved[2], &targets = saved[3];
    const double T = ctx->saved_data["T"].toDouble(), kd_w = ctx->saved_data["kd_w"].toDouble(),
                 ce_w = ctx->saved_data["ce_w"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt(), N = hidden.size(0);
    const bool kd = kd_w != 0.0, ce = ce_w != 0.0;
    // d total / d(kd), d(ce) from every output that reached the loss.
    const at::Tensor g = grads[0].to(at::kDouble).cpu();
    const double gk = g[0].item<double>() * kd_w + g[1].item<double>();
    const double gc = g[0].item<double>() * ce_w + g[2].item<double>();
    at::Tensor gh = at::empty_like(hidden);
    for (int64_t r = 0; r < N; r += chunk) {
      const int64_t n = std::min(chunk, N - r);
      const at::Tensor th = kd ? teacher.narrow(0, r, n) : at::Tensor();
      Chunk c = chunk_terms(hidden.narrow(0, r, n), head, th, T, kd, ce);
      at::Tensor gz = at::zeros({n, head.size(0)}, c.logp_s_t.defined() ? c.logp_s_t.options() : c.logp_s.options());
      // d kd / d z_s = T^2 / N * (softmax(z_s / T) - p_t) / T; d ce / d z_s = (softmax(z_s) - onehot) / N.
      if (kd) gz.add_((c.logp_s_t.exp() - c.p_t) * (gk * T / static_cast<double>(N)));
      if (ce) {
        at::Tensor d = c.logp_s.exp();
        d.scatter_add_(1, targets.narrow(0, r, n).unsqueeze(1), at::full({n, 1}, -1.0, d.options()));
        gz.add_(d * (gc / static_cast<double>(N)));
      }
      gh.narrow(0, r, n).copy_(at::matmul(gz.to(hidden.scalar_type()), head));
    }
    return {gh, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor head_loss(const at::Tensor& hidden, const at::Tensor& head, const at::Tensor& teacher_hidden,
                     const at::Tensor& targets, const HeadLossOptions& opts) {
  JNAS_CHECK_CONFIG(hidden.dim() == 2 && head.dim() == 2 && hidden.size(1) == head.size(1),
                    "head_loss: hidden [N, H] and head [V, H] expected, got [{}] and [{}]",
                    fmt::join(hidden.sizes(), ", "), fmt::join(head.sizes(), ", "));
  JNAS_CHECK_CONFIG(opts.temperature > 0 && opts.chunk_rows > 0, "head_loss: temperature and chunk_rows must be > 0");
  JNAS_CHECK_CONFIG(opts.kd_weight == 0.0 || (teacher_hidden.defined() && teacher_hidden.sizes() == hidden.sizes()),
                    "head_loss: kd_weight {} needs teacher hidden states of the student's shape", opts.kd_weight);
  JNAS_CHECK_CONFIG(opts.ce_weight == 0.0 || (targets.defined() && targets.dim() == 1 && targets.size(0) == hidden.size(0)),
                    "head_loss: ce_weight {} needs one target per row", opts.ce_weight);
  JNAS_CHECK_CONFIG(!head.requires_grad(), "head_loss: the LM head is frozen (pass it detached)");
  const at::Tensor th = teacher_hidden.defined() ? teacher_hidden.detach() : at::empty({0}, hidden.options());
  const at::Tensor tg = targets.defined() ? targets.to(hidden.device(), at::kLong) : at::empty({0}, at::TensorOptions().dtype(at::kLong).device(hidden.device()));
  return HeadLossFn::apply(hidden, head, th, tg, opts);
}

}  // namespace jointnas::search
