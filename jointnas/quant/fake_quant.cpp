// Straight-through fake quantization (autograd). The forward is one fused fp32 expression on the
// grid of weight_grid / the per-token scales, without integer tensors; its equality with
// dequantize_ref(quantize_ref(w)) is a tested invariant (tests/quant/quant_test.cpp).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "jointnas/quant/quantize.h"

namespace jointnas::quant {
namespace {

// value(t) = (clamp(round(t) + z, lo, hi) - z) * s on [.., G, g] views; mask = t + z inside
// [lo - 1/2, hi + 1/2].
struct GridResult {
  at::Tensor value;
  at::Tensor mask;
};

GridResult fake_weight(const at::Tensor& w, const QuantFormat& f, int64_t group) {
  const int64_t N = w.size(0), K = w.size(1);
  if (f.weight == WeightType::kGgml) {
    // ggml's grids cover each block's range (no clipping): the gradient passes everywhere.
    return {dequantize_ref(quantize_ref(w, f), w.scalar_type()), at::ones_like(w, at::kBool)};
  }
  const QuantizedWeight g = weight_grid(w, f, group);
  at::Tensor wg = w.to(at::kFloat).reshape({N, K / g.group, g.group});
  at::Tensor s = g.scale.to(at::kFloat).unsqueeze(-1);
  at::Tensor t = wg / s;
  GridResult r;
  if (f.weight == WeightType::kFp8E4M3) {
    r.value = (at::clamp(t, -kFp8E4M3Max, kFp8E4M3Max).to(at::kFloat8_e4m3fn).to(at::kFloat) * s);
    r.mask = at::abs(t) <= kFp8E4M3Max;
  } else {
    at::Tensor z = f.asymmetric ? g.zero.to(at::kFloat).unsqueeze(-1) : at::zeros_like(s);
    at::Tensor tz = t + z;
    r.value = (at::clamp(at::round(t) + z, f.qmin(), f.qmax()) - z) * s;
    r.mask = (tz >= f.qmin() - 0.5) & (tz <= f.qmax() + 0.5);
  }
  r.value = r.value.reshape({N, K}).to(w.scalar_type());
  r.mask = r.mask.reshape({N, K});
  return r;
}

GridResult fake_act(const at::Tensor& x, const QuantFormat& f) {
  if (f.act == ActType::kGgml) return {ggml_fake_act(x, f), at::ones_like(x, at::kBool)};
  at::Tensor x32 = x.to(at::kFloat);
  const bool fp8 = f.act == ActType::kFp8E4M3PerToken;
  const float qmax = fp8 ? kFp8E4M3Max : 127.0f;
  at::Tensor s = div_exact(std::get<0>(x32.abs().max(-1, /*keepdim=*/true)), qmax);
  s = at::where(s == 0, at::ones_like(s), s);
  at::Tensor t = x32 / s;
  GridResult r;
  if (fp8) {
    r.value = at::clamp(t, -qmax, qmax).to(at::kFloat8_e4m3fn).to(at::kFloat) * s;
  } else {
    r.value = at::clamp(at::round(t), -qmax, qmax) * s;
  }
  // The per-token scale comes from the token's own amax, so nothing is clipped: |t| exceeds qmax
  // only by the rounding of amax / (amax / qmax), and the gradient must pass there too (an fp8
  // mask of |t| <= 448 dropped the amax element's gradient about half of the time).
  r.mask = at::abs(t) <= qmax + 0.5f;
  r.value = r.value.to(x.scalar_type());
  return r;
}

template <bool kAct>
struct FakeQuantFn : public torch::autograd::Function<FakeQuantFn<kAct>> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const QuantFormat* f, int64_t group) {
    GridResult r = kAct ? fake_act(x, *f) : fake_weight(x, *f, group);
    ctx->save_for_backward({r.mask});
    return r.value;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    return {grad[0] * mask.to(grad[0].scalar_type()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quant(const at::Tensor& w, const QuantFormat& format) {
  TORCH_CHECK(w.dim() == 2, "fake_quant: expected a weight matrix [N, K], got ", w.sizes());
  if (!format.quantized()) return w;
  return FakeQuantFn<false>::apply(w, &format, format.group_for(w.size(1)));
}

at::Tensor fake_quant(const at::Tensor& w, const QuantFormat& format, int64_t group) {
  TORCH_CHECK(w.dim() == 2, "fake_quant: expected a weight matrix [N, K], got ", w.sizes());
  if (!format.quantized()) return w;
  TORCH_CHECK(format.allows_group(w.size(1), group), "fake_quant: group ", group,
              " is not allowed for ", format.name, " with K = ", w.size(1));
  return FakeQuantFn<false>::apply(w, &format, group);
}

at::Tensor fake_quant_act(const at::Tensor& x, const QuantFormat& format) {
  if (format.act == ActType::kNone) return x;
  return FakeQuantFn<true>::apply(x, &format, int64_t{0});
}

}  // namespace jointnas::quant
