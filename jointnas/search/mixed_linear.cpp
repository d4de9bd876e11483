#include "jointnas/search/mixed_linear.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "jointnas/quant/ggml_quants.h"
#include "jointnas/quant/quantize.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/search/mix_cuda.h"
#endif

namespace jointnas::search {
namespace {

at::Tensor act_input(const at::Tensor& x2d, const quant::QuantFormat& f) {
  if (f.act == quant::ActType::kNone) return x2d;
#ifdef JNAS_WITH_CUDA
  // Two fused kernels instead of ~10 ATen passes: dequantize(quantize_act) is bitwise
  // fake_quant_act (tests/search/mix_cuda_test.cpp).
  if (x2d.is_cuda() && x2d.scalar_type() == at::kBFloat16 && x2d.size(1) <= 16384) {
    const at::Tensor xc = x2d.contiguous();
    auto [q, sc] = f.act == quant::ActType::kInt8PerToken ? quant::cuda::quantize_act_int8(xc)
                                                           : quant::cuda::quantize_act_fp8(xc);
    return x2d.size(1) % 8 == 0 ? cuda::dequantize_act_bf16(q, sc) : quant::dequantize_act_ref({q, sc}, at::kBFloat16);
  }
#endif
  return quant::fake_quant_act(x2d, f);
}

// FQ_f of rows [r0, r0 + n) of the weight (per-row / per-group scales: slicing rows is exact).
at::Tensor fq_rows(const MixedWeight& w, size_t f, int64_t r0, int64_t n) {
  at::Tensor rows = w.weight.narrow(0, r0, n);
  return quant::fake_quant(rows, *w.formats[f], w.groups[f]);
}

#ifdef JNAS_WITH_CUDA
// The fused kernel's description of a class of formats, or false where it does not apply (CPU,
// non-bf16 weights, a grouped symmetric format, K > 16384).
bool fused_spec(const MixedWeight& w, const std::vector<size_t>& cls, cuda::MixSpec* spec) {
  const at::Tensor& W = w.weight;
  if (!W.is_cuda() || W.scalar_type() != at::kBFloat16 || W.size(1) % 8 != 0 || W.size(1) > 16384 ||
      cls.size() > static_cast<size_t>(cuda::kMaxMixFormats)) {
    return false;
  }
  spec->num_formats = static_cast<int>(cls.size());
  for (size_t i = 0; i < cls.size(); ++i) {
    const quant::QuantFormat& f = *w.formats[cls[i]];
    cuda::MixFormat& m = spec->formats[i];
    const bool per_row = w.groups[cls[i]] == W.size(1);
    if (!f.quantized()) {
      m.kind = cuda::kMixNone;
    } else if (f.weight == quant::WeightType::kFp8E4M3 && per_row) {
      m.kind = cuda::kMixFp8;
      m.qmax = quant::kFp8E4M3Max;
    } else if (f.weight == quant::WeightType::kInt && !f.asymmetric && per_row) {
      m.kind = cuda::kMixSymInt;
      m.qmin = f.qmin();
      m.qmax = static_cast<float>(f.qmax());
    } else if (f.weight == quant::WeightType::kInt && f.asymmetric && w.groups[cls[i]] <= 128) {
      m.kind = cuda::kMixAsymInt;
      m.qmin = f.qmin();
      m.qmax = static_cast<float>(f.qmax());
      m.group = static_cast<int>(w.groups[cls[i]]);
    } else {
      return false;
    }
  }
  return true;
}
#endif

// W_mix = sum_{f in fs} p_f FQ_f(W) for chunks of weight rows, over a subset `fs` of the formats:
// the fused kernel where it applies, else ATen. pc: p at `fs` (on the weight's device).
class Mixer {
 public:
  Mixer(const MixedWeight& w, const std::vector<size_t>& fs, const at::Tensor& p, const at::Tensor& pc)
      : w_(w), fs_(fs), pd_(p.to(at::kDouble)), pc_(pc) {
#ifdef JNAS_WITH_CUDA
    fused_ = fused_spec(w, fs, &spec_);
#endif
  }
  bool fused() const { return fused_; }

  // (a b^T) * W_mix for rows [r0, r0 + n), in the weight's dtype (a: the rows' [n] entries).
  at::Tensor masked_rows(int64_t r0, int64_t n, const at::Tensor& a, const at::Tensor& b) const {
#ifdef JNAS_WITH_CUDA
    if (fused_) {
      cuda::MixOutput o;
      o.row_scale = &a;
      o.col_scale = &b;
      return cuda::mix_weights(w_.weight.narrow(0, r0, n), spec_, pc_, nullptr, nullptr, nullptr, o);
    }
#endif
    const auto dt = w_.weight.scalar_type();
    at::Tensor wm;
    for (size_t f : fs_) {
      at::Tensor t = fq_rows(w_, f, r0, n) * pd_[f].to(dt);
      wm = wm.defined() ? wm + t : t;
    }
    return wm * a.to(dt).unsqueeze(1) * b.to(dt).unsqueeze(0);
  }

#ifdef JNAS_WITH_CUDA
  // Fused only: G * a * W_mix for rows [r0, r0 + n), and sums[n, i] = sum_k G FQ_{fs[i]} b.
  at::Tensor backward_rows(int64_t r0, int64_t n, const at::Tensor& G, const at::Tensor& a, const at::Tensor& b,
                           at::Tensor* sums) const {
    cuda::MixOutput o;
    o.row_scale = &a;
    o.times_g = true;
    return cuda::mix_weights(w_.weight.narrow(0, r0, n), spec_, pc_, &G, &b, sums, o);
  }
#endif

 private:
  const MixedWeight& w_;
  const std::vector<size_t>& fs_;
  at::Tensor pd_, pc_;
  bool fused_ = false;
#ifdef JNAS_WITH_CUDA
  cuda::MixSpec spec_;
#endif
};

struct FactorizedFn : public torch::autograd::Function<FactorizedFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2d,
                            const at::Tensor& p, const at::Tensor& a, const at::Tensor& b,
                            const MixedWeight* w) {
    ctx->save_for_backward({x2d, p, a, b});
    ctx->saved_data["w"] = reinterpret_cast<int64_t>(w);
    const int64_t N = w->weight.size(0), T = x2d.size(0);
    at::Tensor y = at::zeros({T, N}, x2d.options());
    for (size_t c = 0; c < w->classes.size(); ++c) {
      const auto& cls = w->classes[c];
      const at::Tensor xq = act_input(x2d, *w->formats[cls[0]]);
      const Mixer mix(*w, cls, p, p.index_select(0, w->class_index[c]));
      for (int64_t r0 = 0; r0 < N; r0 += w->row_chunk) {
        const int64_t n = std::min(w->row_chunk, N - r0);
        y.narrow(1, r0, n).addmm_(xq, mix.masked_rows(r0, n, a.narrow(0, r0, n), b).t());
      }
    }
    return y;
  }

  // Per activation class c: G_c = g^T Qact_c(x) per row chunk gives d/dp, d/da, d/db. The straight-
  // through activation quantizers (d Qact(x) / dx = 1: per-token scales never clip) make d/dx one
  // matmul with the mixture over every format, g ((a b^T) * sum_f p_f FQ_f(W)), instead of one per
  // class: 1 + classes matmuls in the backward instead of 2 x classes.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x2d = saved[0], &p = saved[1], &a = saved[2], &b = saved[3];
    const auto* w = reinterpret_cast<const MixedWeight*>(ctx->saved_data["w"].toInt());
    const at::Tensor g = grads[0].contiguous();
    const int64_t N = w->weight.size(0);
    const auto dt = w->weight.scalar_type();
    at::Tensor pd = p.to(at::kDouble);
    at::Tensor bd = b.to(dt).unsqueeze(0);
    at::Tensor gx = at::zeros_like(x2d);
    at::Tensor gp = at::zeros({p.size(0)}, p.options().dtype(at::kDouble));
    at::Tensor ga = at::zeros({N}, a.options().dtype(at::kDouble));
    at::Tensor gb = at::zeros({b.size(0)}, b.options().dtype(at::kDouble));
    // A LoRA-only step (architecture logits frozen) needs no gradient for p, a or b: then only
    // dL/dx is formed, one matmul instead of 1 + classes.
    const bool arch_grads = ctx->needs_input_grad(1) || ctx->needs_input_grad(2) || ctx->needs_input_grad(3);
    for (size_t c = 0; arch_grads && c < w->classes.size(); ++c) {
      const auto& cls = w->classes[c];
      const at::Tensor xq = act_input(x2d, *w->formats[cls[0]]);
      const at::Tensor& ci = w->class_index[c];
      const at::Tensor pc = p.index_select(0, ci);
      const Mixer mix(*w, cls, p, pc);
      for (int64_t r0 = 0; r0 < N; r0 += w->row_chunk) {
        const int64_t n = std::min(w->row_chunk, N - r0);
        at::Tensor ar = a.narrow(0, r0, n).to(dt).unsqueeze(1);
        at::Tensor gq = at::mm(g.narrow(1, r0, n).t(), xq);  // [n, K] = g^T Qact(x)
#ifdef JNAS_WITH_CUDA
        if (mix.fused()) {
          // sums[n, i] = sum_k G FQ_i b: dL/da = sums p, dL/dp_i = sum_n a_n sums[n, i];
          // dL/db = column sums of G * a * W_mix.
          at::Tensor sums;
          const at::Tensor a_r = a.narrow(0, r0, n);
          at::Tensor gaw = mix.backward_rows(r0, n, gq, a_r, b, &sums);
          at::Tensor sd = sums.to(at::kDouble);
          gp.index_add_(0, ci, (sd * a_r.to(at::kDouble).unsqueeze(1)).sum(0));
          ga.narrow(0, r0, n) += (sd * pc.to(at::kDouble).unsqueeze(0)).sum(1);
          gb += gaw.sum(0, false, at::kFloat);
          continue;
        }
#endif
        at::Tensor wm;
        for (size_t f : cls) {
          at::Tensor wf = fq_rows(*w, f, r0, n);
          // dL/dp_f = sum((a b^T) * FQ_f(W) * G)
          gp[f] += (gq * wf * ar * bd).sum(at::kDouble);
          at::Tensor t = wf * pd[f].to(dt);
          wm = wm.defined() ? wm + t : t;
        }
        at::Tensor gw = gq * wm;  // G * W_mix
        ga.narrow(0, r0, n) += (gw * bd).sum(1, false, at::kDouble);
        gb += (gw * ar).sum(0, false, at::kDouble);
      }
    }
    const Mixer all(*w, w->all_formats, p, p);
    for (int64_t r0 = 0; r0 < N; r0 += w->row_chunk) {
      const int64_t n = std::min(w->row_chunk, N - r0);
      gx.addmm_(g.narrow(1, r0, n), all.masked_rows(r0, n, a.narrow(0, r0, n), b));
    }
    if (!arch_grads) return {gx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    return {gx, gp.to(p.scalar_type()), ga.to(a.scalar_type()), gb.to(b.scalar_type()), at::Tensor()};
  }
};

}  // namespace

void MixedWeight::prepare() {
  all_formats.resize(formats.size());
  for (size_t f = 0; f < formats.size(); ++f) all_formats[f] = f;
  classes.clear();
  class_index.clear();
  // One class per activation quantizer: the ActType, and for ggml's formats the weight type's
  // vec_dot_type (f16 rounding, q8_0 blocks, q8_K blocks are three different quantizers).
  auto key_of = [](const quant::QuantFormat& f) {
    if (f.act != quant::ActType::kGgml) return static_cast<int>(f.act);
    return 1000 + static_cast<int>(quant::ggml::type_info(static_cast<quant::ggml::Type>(f.ggml_type)).vec_dot_type);
  };
  std::vector<int> keys;
  for (size_t f = 0; f < formats.size(); ++f) {
    auto it = std::find(keys.begin(), keys.end(), key_of(*formats[f]));
    if (it == keys.end()) {
      keys.push_back(key_of(*formats[f]));
      classes.push_back({f});
    } else {
      classes[it - keys.begin()].push_back(f);
    }
  }
  for (const auto& cls : classes) {
    std::vector<int64_t> idx(cls.begin(), cls.end());
    class_index.push_back(at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(weight.device()));
  }
}

at::Tensor mixed_linear_factorized(const at::Tensor& x, const MixedWeight& w, const at::Tensor& p,
                                   const at::Tensor& a, const at::Tensor& b) {
  const int64_t K = w.weight.size(1), N = w.weight.size(0);
  TORCH_CHECK(x.size(-1) == K && a.numel() == N && b.numel() == K &&
                  p.numel() == static_cast<int64_t>(w.formats.size()),
              "mixed_linear: shapes disagree");
  TORCH_CHECK(w.classes.size() == w.class_index.size() && !w.classes.empty(),
              "mixed_linear: MixedWeight::prepare() was not called");
  auto out_shape = x.sizes().vec();
  out_shape.back() = N;
  at::Tensor x2d = x.reshape({-1, K});
  return FactorizedFn::apply(x2d, p, a, b, &w).view(out_shape);
}

}  // namespace jointnas::search
