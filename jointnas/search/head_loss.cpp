#include "jointnas/search/head_loss.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <fmt/ranges.h>

#include "jointnas/core/error.h"

namespace jointnas::search {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType wide(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// One pass over the rows in chunks. The loss is the last node of the graph, so the gradients of its
// two terms with respect to the hidden states are formed in the same pass, each as [N, H] in the
// hidden states' dtype; the backward only weighs them by the incoming gradient. The logits are
// computed once (not again in the backward), and nothing waits for the host.
class HeadLossFn : public torch::autograd::Function<HeadLossFn> {
 public:
  // grad: whether autograd will call backward (hidden requires a gradient and grad mode was on at
  // the call site; inside forward grad mode is always off).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& head,
                            const at::Tensor& teacher, const at::Tensor& targets, HeadLossOptions o, bool grad) {
    at::NoGradGuard no_grad;
    const int64_t N = hidden.size(0);
    const bool kd = o.kd_weight != 0.0, ce = o.ce_weight != 0.0;
    const double T = o.temperature, inv_n = 1.0 / static_cast<double>(N);
    const at::ScalarType wt = wide(hidden);
    const auto acc = hidden.options().dtype(at::kDouble);
    at::Tensor kd_sum = at::zeros({}, acc), ce_sum = at::zeros({}, acc), agree = at::zeros({}, acc);
    at::Tensor gh_kd = grad && kd ? at::empty_like(hidden) : at::empty({0}, hidden.options());
    at::Tensor gh_ce = grad && ce ? at::empty_like(hidden) : at::empty({0}, hidden.options());
    // z / T in the wide dtype, as softmax(z.float() / T); at T = 1 the widening is left to the
    // softmax itself (no widened copy of the logits).
    auto tempered = [&](const at::Tensor& z) { return T == 1.0 ? z : z.to(wt) / T; };
    for (int64_t r = 0; r < N; r += o.chunk_rows) {
      const int64_t n = std::min(o.chunk_rows, N - r);
      const at::Tensor z = at::matmul(hidden.narrow(0, r, n), head.t());  // [n, V], hidden dtype
      at::Tensor logp_s_t;
      if (kd) {
        // In place where it can be, so that at most three [n, V] wide tensors live at once (a
        // chunk of 1024 rows at 128k words is 0.5 GB each in fp32).
        logp_s_t = at::log_softmax(tempered(z), -1, wt);
        at::Tensor p_t;
        {
          const at::Tensor zt = at::matmul(teacher.narrow(0, r, n), head.t());
          agree += (z.argmax(-1) == zt.argmax(-1)).sum(at::kDouble);
          at::Tensor logp_t = at::log_softmax(tempered(zt), -1, wt);
          p_t = logp_t.exp();
          // sum p_t (log p_t - log p_s) as one dot product: 0 where p_t underflows to 0 (log p_t
          // stays finite, unlike log(p_t)).
          const at::Tensor diff = logp_t.sub_(logp_s_t).view(-1);
          // On CUDA one cuBLAS dot (no [n, V] temporary; BLAS takes int counts); on the CPU ATen's
          // cascade sum, which a plain fp32 dot would not match near KL = 0.
          kd_sum += (p_t.is_cuda() && p_t.numel() < (int64_t{1} << 31) ? at::dot(p_t.view(-1), diff)
                                                                         : (p_t.view(-1) * diff).sum())
                        .to(at::kDouble);
        }
        if (grad) {
          // d kd / d z_s = T^2 / N * (softmax(z_s / T) - p_t) / T; the CE term below still needs
          // log p_s at T = 1, otherwise it is consumed in place.
          const bool keep = ce && T == 1.0;
          at::Tensor s = keep ? logp_s_t.exp() : logp_s_t.exp_();
          at::Tensor gz = s.sub_(p_t).to(hidden.scalar_type());
          s = at::Tensor();
          at::Tensor out = gh_kd.narrow(0, r, n);
          at::mm_out(out, gz, head).mul_(T * inv_n);
        }
      }
      if (ce) {
        const at::Tensor tg = targets.narrow(0, r, n).unsqueeze(1);
        const at::Tensor logp = kd && T == 1.0 ? logp_s_t : at::log_softmax(z, -1, wt);
        ce_sum -= logp.gather(1, tg).sum(at::kDouble);
        if (grad) {
          // d ce / d z_s = (softmax(z_s) - onehot) / N, in the wide dtype and rounded once: in bf16
          // a confident target's p - 1 would round to 0 (bf16 steps are 2^-8 near 1).
          at::Tensor gz = at::softmax(z, -1, wt);
          gz.scatter_add_(1, tg, at::full({n, 1}, -1.0, gz.options()));
          at::Tensor out = gh_ce.narrow(0, r, n);
          at::mm_out(out, gz.to(hidden.scalar_type()), head).mul_(inv_n);
        }
      }
    }
    at::Tensor kdv = kd_sum * (T * T * inv_n), cev = ce_sum * inv_n;
    ctx->save_for_backward({gh_kd, gh_ce});
    ctx->saved_data["kd_w"] = o.kd_weight;
    ctx->saved_data["ce_w"] = o.ce_weight;
    return at::stack({kdv * o.kd_weight + cev * o.ce_weight, kdv, cev, agree * inv_n}).to(wt);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gh_kd = saved[0], &gh_ce = saved[1];
    const double kd_w = ctx->saved_data["kd_w"].toDouble(), ce_w = ctx->saved_data["ce_w"].toDouble();
    // d total / d(kd), d(ce) from every output that reached the loss, on the device.
    const at::Tensor& g = grads[0];
    at::Tensor gh;
    if (kd_w != 0.0) gh = gh_kd * (g[0] * kd_w + g[1]);
    if (ce_w != 0.0) {
      at::Tensor t = gh_ce * (g[0] * ce_w + g[2]);
      gh = gh.defined() ? gh.add_(t) : t;
    }
    return {gh, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
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
  return HeadLossFn::apply(hidden, head, th, tg, opts, at::GradMode::is_enabled() && hidden.requires_grad());
}

}  // namespace jointnas::search
