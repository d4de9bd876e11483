// Reference quantizers: the definition of each format's numbers (see quantize.h).
#include "jointnas/quant/quantize.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "jointnas/core/error.h"
#include "jointnas/quant/ggml_quants.h"

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

ggml::Type ggml_type_of(const QuantFormat& f) { return static_cast<ggml::Type>(f.ggml_type); }

void check_ggml_width(const QuantFormat& f, int64_t k) {
  TORCH_CHECK(k % f.block() == 0, f.name, ": ggml stores rows in blocks of ", f.block(),
              " values, but the matrix has K = ", k,
              " columns; fix: choose a width that is a multiple of ", f.block(),
              " or another format (q8_0 and f16 take any multiple of 32)");
}

// w [N, K] -> ggml blocks [N, row_bytes] uint8 (CPU; rows quantized independently).
at::Tensor ggml_quantize(const at::Tensor& w, const QuantFormat& f) {
  const int64_t N = w.size(0), K = w.size(1);
  check_ggml_width(f, K);
  const at::Tensor x = w.to(at::kCPU, at::kFloat).contiguous();
  const int64_t rb = ggml::row_bytes(ggml_type_of(f), K);
  at::Tensor q = at::empty({N, rb}, at::TensorOptions().dtype(at::kByte));
  const float* xp = x.data_ptr<float>();
  uint8_t* qp = q.data_ptr<uint8_t>();
  at::parallel_for(0, N, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      ggml::quantize_row(ggml_type_of(f), {xp + r * K, static_cast<size_t>(K)},
                         {qp + r * rb, static_cast<size_t>(rb)});
    }
  });
  return q.to(w.device());
}

// ggml blocks [N, row_bytes] -> fp32 [N, K].
at::Tensor ggml_dequantize(const at::Tensor& q, const QuantFormat& f, int64_t K) {
  const int64_t N = q.size(0);
  const int64_t rb = ggml::row_bytes(ggml_type_of(f), K);
  TORCH_CHECK(q.scalar_type() == at::kByte && q.dim() == 2 && q.size(1) == rb, f.name,
              ": expected blocks [", N, ", ", rb, "] uint8, got ", q.sizes(), " ", q.scalar_type());
  const at::Tensor b = q.to(at::kCPU).contiguous();
  at::Tensor y = at::empty({N, K}, at::TensorOptions().dtype(at::kFloat));
  const uint8_t* bp = b.data_ptr<uint8_t>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      ggml::dequantize_row(ggml_type_of(f), {bp + r * rb, static_cast<size_t>(rb)},
                           {yp + r * K, static_cast<size_t>(K)});
    }
  });
  return y.to(q.device());
}

}  // namespace

at::Tensor ggml_dequantize_weight(const at::Tensor& blocks, const QuantFormat& f, int64_t in_features) {
  return ggml_dequantize(blocks, f, in_features);
}

at::Tensor ggml_fake_act(const at::Tensor& x, const QuantFormat& f) {
  TORCH_CHECK(f.act == ActType::kGgml, "ggml_fake_act: ", f.name, " is not a ggml format");
  const int64_t K = x.size(-1);
  check_ggml_width(f, K);
  at::Tensor y = x.to(at::kCPU, at::kFloat).contiguous().clone().reshape({-1, K});
  float* p = y.data_ptr<float>();
  at::parallel_for(0, y.size(0), 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      ggml::fake_quant_activation_row(ggml_type_of(f), {p + r * K, static_cast<size_t>(K)});
    }
  });
  return y.reshape(x.sizes()).to(x.device(), x.scalar_type());
}

at::Tensor div_exact(const at::Tensor& t, double v) {
  return t / at::full({1}, v, t.options());
}

QuantizedWeight weight_grid(const at::Tensor& w, const QuantFormat& f, int64_t group) {
  check_weight(w, "weight_grid");
  QuantizedWeight g;
  g.format = &f;
  const int64_t K = w.size(1);
  g.group = f.quantized() ? group : K;
  if (!f.quantized() || f.weight == WeightType::kGgml) return g;
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
  if (f.weight == WeightType::kGgml) {
    g.q = ggml_quantize(w, f);
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
  if (f.weight == WeightType::kGgml) return ggml_dequantize(qw.q, f, qw.group).to(dtype);
  const int64_t N = qw.q.size(0), K = qw.q.size(1);
  at::Tensor q = qw.q.to(at::kFloat).reshape({N, K / qw.group, qw.group});
  if (f.asymmetric) q = q - qw.zero.to(at::kFloat).unsqueeze(-1);
  return (q * qw.scale.to(at::kFloat).unsqueeze(-1)).reshape({N, K}).to(dtype);
}

QuantizedAct quantize_act_ref(const at::Tensor& x, const QuantFormat& f) {
  TORCH_CHECK(f.act != ActType::kNone && f.act != ActType::kGgml, "quantize_act_ref: format ", f.name,
              " keeps activations unquantized or quantizes them as ggml does (ggml_fake_act)");
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
  if (f.weight == WeightType::kGgml) {
    // ggml-cpu: the activations quantized to the weight's vec_dot_type, then exact products.
    TORCH_CHECK(x.size(-1) == qw.group, "linear_ref: x has ", x.size(-1), " features, the weight expects ",
                qw.group);
    at::Tensor w = dequantize_ref(qw, at::kFloat).to(at::kDouble);
    return at::matmul(ggml_fake_act(x.scalar_type() == at::kDouble ? x : x.to(at::kFloat), f).to(at::kDouble), w.t()).to(out_dtype);
  }
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
