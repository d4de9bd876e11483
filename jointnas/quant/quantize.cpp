// Reference quantizers: the definition of each format's numbers (see quantize.h).
#include "jointnas/quant/quantize.h"

#include <ATen/ATen.h>

#include "jointnas/core/error.h"

namespace jointnas::quant {
namespace {

void check_weight(const at::Tensor& w, const char* what) {
  TORCH_CHECK(w.defined() && w.dim() == 2 && at::isFloatingType(w.scalar_type()), what,
              ": expected a floating matrix [N, K], got ",
              w.defined() ? w.sizes().vec() : std::vector<int64_t>{}, " ",
              w.defined() ? w.scalar_type() : at::kFloat);
}

// Stores fp32 scales s in `dtype`, rounding up where needed so that stored * qmax >= span
// (compared in double): the grid still covers every value of the group.
at::Tensor store_scale_up(const at::Tensor& s, const at::Tensor& span, double qmax,
                          c10::ScalarType dtype) {
  at::Tensor st = s.to(dtype);
  // No `short_of.any()` shortcut: that would sync the device on every fake_quant in training.
  const at::Tensor short_of = st.to(at::kDouble) * qmax < span.to(at::kDouble);
  return at::where(short_of, at::nextafter(st, at::full_like(st, INFINITY)), st);
}

// [N, K] -> [N, G, g] fp32 view.
at::Tensor grouped(const at::Tensor& w, int64_t group) {
  return w.to(at::kFloat).reshape({w.size(0), w.size(1) / group, group});
}

}  // namespace

at::Tensor div_exact(const at::Tensor& t, double v) {
  return t / at::full({1}, v, t.options());
}

QuantizedWeight weight_grid(const at::Tensor& w, const QuantFormat& f, int64_t group) {
  check_weight(w, "weight_grid");
  QuantizedWeight g;
  g.format = &f;
  const int64_t K = w.size(1);
  g.group = f.quantized() ? group : K;
  if (!f.quantized()) return g;
  TORCH_CHECK(group > 0 && K % group == 0, "weight_grid: group ", group, " must divide K = ", K);
  at::Tensor wg = grouped(w, group);  // [N, G, g] fp32
  if (f.weight == WeightType::kInt && f.asymmetric) {
    // The range always includes 0 so that zero weights (masked channels) stay exactly zero.
    at::Tensor mn = at::clamp_max(std::get<0>(wg.min(-1)), 0.0f);
    at::Tensor mx = at::clamp_min(std::get<0>(wg.max(-1)), 0.0f);
    at::Tensor span = mx.to(at::kDouble) - mn.to(at::kDouble);
    at::Tensor s = div_exact(mx - mn, f.qmax());
    at::Tensor st = store_scale_up(s, span, f.qmax(), f.scale_dtype);
    st = at::where(st == 0, at::ones_like(st), st);
    at::Tensor z = at::clamp(at::round(-mn / st.to(at::kFloat)), 0, f.qmax());
    g.scale = st;
    g.zero = z.to(at::kByte);
    return g;
  }
  const float qmax = f.weight == WeightType::kFp8E4M3 ? kFp8E4M3Max : static_cast<float>(f.qmax());
  at::Tensor amax = std::get<0>(wg.abs().max(-1));  // [N, G]
  at::Tensor st = store_scale_up(div_exact(amax, qmax), amax, qmax, f.scale_dtype);
  g.scale = at::where(st == 0, at::ones_like(st), st);
  return g;
}

QuantizedWeight quantize_on_grid(const at::Tensor& w, QuantizedWeight g) {
  check_weight(w, "quantize_on_grid");
  const QuantFormat& f = *g.format;
  if (!f.quantized()) {
    g.q = w.clone();
    return g;
  }
  const int64_t N = w.size(0), K = w.size(1);
  at::Tensor wg = grouped(w, g.group);                        // [N, G, g]
  at::Tensor s = g.scale.to(at::kFloat).unsqueeze(-1);        // [N, G, 1]
  if (f.weight == WeightType::kFp8E4M3) {
    g.q = at::clamp(wg / s, -kFp8E4M3Max, kFp8E4M3Max).to(at::kFloat8_e4m3fn).reshape({N, K});
    return g;
  }
  at::Tensor t = at::round(wg / s);
  if (f.asymmetric) t = t + g.zero.to(at::kFloat).unsqueeze(-1);
  g.q = at::clamp(t, f.qmin(), f.qmax()).to(at::kChar).reshape({N, K});
  return g;
}

QuantizedWeight quantize_ref(const at::Tensor& w, const QuantFormat& f) {
  check_weight(w, "quantize_ref");
  return quantize_on_grid(w, weight_grid(w, f, f.group_for(w.size(1))));
}

at::Tensor dequantize_ref(const QuantizedWeight& qw, c10::ScalarType dtype) {
  const QuantFormat& f = *qw.format;
  if (!f.quantized()) return qw.q.to(dtype);
  const int64_t N = qw.q.size(0), K = qw.q.size(1);
  at::Tensor q = qw.q.to(at::kFloat).reshape({N, K / qw.group, qw.group});
  if (f.asymmetric) q = q - qw.zero.to(at::kFloat).unsqueeze(-1);
  return (q * qw.scale.to(at::kFloat).unsqueeze(-1)).reshape({N, K}).to(dtype);
}

QuantizedAct quantize_act_ref(const at::Tensor& x, const QuantFormat& f) {
  TORCH_CHECK(f.act != ActType::kNone, "quantize_act_ref: format ", f.name,
              " keeps activations unquantized");
  at::Tensor x32 = x.to(at::kFloat);
  const float qmax = f.act == ActType::kFp8E4M3PerToken ? kFp8E4M3Max : 127.0f;
  // No rounding up here (fp32 scale, |x / s| exceeds qmax by at most an ulp, which the clamp
  // absorbs); the fused CUDA kernel computes exactly this.
  at::Tensor s = div_exact(std::get<0>(x32.abs().max(-1, /*keepdim=*/true)), qmax);
  s = at::where(s == 0, at::ones_like(s), s);
  QuantizedAct qa;
  qa.scale = s;
  if (f.act == ActType::kFp8E4M3PerToken) {
    qa.q = at::clamp(x32 / s, -kFp8E4M3Max, kFp8E4M3Max).to(at::kFloat8_e4m3fn);
  } else {
    qa.q = at::clamp(at::round(x32 / s), -127, 127).to(at::kChar);
  }
  return qa;
}

at::Tensor dequantize_act_ref(const QuantizedAct& qa, c10::ScalarType dtype) {
  return (qa.q.to(at::kFloat) * qa.scale).to(dtype);
}

at::Tensor linear_ref(const at::Tensor& x, const QuantizedWeight& qw, c10::ScalarType out_dtype) {
  const QuantFormat& f = *qw.format;
  TORCH_CHECK(x.size(-1) == qw.q.size(1), "linear_ref: x has ", x.size(-1),
              " features, the weight expects ", qw.q.size(1));
  if (f.act == ActType::kNone) {
    at::Tensor w = dequantize_ref(qw, at::kFloat).to(at::kDouble);
    return at::matmul(x.to(at::kDouble), w.t()).to(out_dtype);
  }
  return linear_ref(quantize_act_ref(x, f), qw, out_dtype);
}

at::Tensor linear_ref(const QuantizedAct& x, const QuantizedWeight& qw, c10::ScalarType out_dtype) {
  TORCH_CHECK(qw.format->act != ActType::kNone, "linear_ref: ", qw.format->name,
              " keeps activations unquantized");
  TORCH_CHECK(x.q.size(-1) == qw.q.size(1), "linear_ref: x has ", x.q.size(-1),
              " features, the weight expects ", qw.q.size(1));
  // Integer (or e4m3) dot products are exact in double for any K < 2^53 / 127^2.
  at::Tensor dot = at::matmul(x.q.to(at::kFloat).to(at::kDouble),
                              qw.q.to(at::kFloat).to(at::kDouble).t());
  return (dot * x.scale.to(at::kDouble) * qw.scale.to(at::kDouble).reshape({-1})).to(out_dtype);
}

}  // namespace jointnas::quant
