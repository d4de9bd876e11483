// QuantLinear dispatch (see qlinear.h for the table of paths).
#include "jointnas/quant/qlinear.h"

#include <ATen/ATen.h>

#include "jointnas/core/log.h"
#include "jointnas/kernels/linear.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/quant/qkernels_cuda.h"
#endif

namespace jointnas::quant {
namespace {

// float(acc) * sx * sw in fp32 (the order of the CUDA epilogue), rounded once to dtype.
at::Tensor scale_epilogue_ref(const at::Tensor& acc, const at::Tensor& sx, const at::Tensor& sw_row,
                              c10::ScalarType dtype) {
  return (acc.to(at::kFloat) * sx * sw_row).to(dtype);
}

// Once per process: a shape no kernel takes runs the reference (correct, slow).
void warn_reference(const PackedWeight& w, int64_t m, c10::Device device) {
  static bool warned = false;
  if (!warned) {
    warned = true;
    JNAS_LOG_WARN("{}: no kernel for [{} x {}] x [{} x {}] on {}; running the reference path "
                  "(slow, same numbers)",
                  w.format->name, m, w.in_features, w.out_features, w.in_features, device.str());
  }
}

}  // namespace

QuantLinear::QuantLinear(PackedWeight w, c10::Device device, c10::ScalarType dtype)
    : w_(w.to(device)), device_(device), dtype_(dtype) {
  const QuantFormat& f = *w_.format;
  if (!f.quantized()) {
    dense_ = w_.data.to(dtype).contiguous();
    w_.data = dense_;
    return;
  }
  if (f.act != ActType::kNone && f.act != ActType::kGgml) scale_row_ = w_.scale.to(at::kFloat).reshape({1, -1}).contiguous();
  if (f.weight == WeightType::kGgml) {
    // ggml's numbers are fp32 (dequantized blocks, quantized activations): kept in fp32 (fp64 in
    // an fp64 layer), since a bf16 copy would round both (about 2^-9 of each product).
    dense_ = dequantize_ref(unpack(w_), dtype == at::kDouble ? at::kDouble : at::kFloat).contiguous();
  } else if (device.is_cpu() && f.weight_only()) {
    dense_ = dequantize_ref(unpack(w_), dtype).contiguous();
  }
#ifndef JNAS_WITH_CUDA
  TORCH_CHECK(device.is_cpu(), "QuantLinear: this build has no CUDA (rebuild with -DJNAS_WITH_CUDA=ON)");
#endif
}

QuantLinear QuantLinear::quantize(const at::Tensor& w, const QuantFormat& format, c10::Device device,
                                  c10::ScalarType dtype) {
  return QuantLinear(pack(quantize_ref(w, format)), device, dtype);
}

QuantLinear::Path QuantLinear::choose(int64_t m) const {
  const QuantFormat& f = *w_.format;
  if (!f.quantized()) return Path::kDense;
  if (f.weight == WeightType::kGgml) return Path::kGgml;
  if (device_.is_cpu()) {
    if (f.weight_only()) return Path::kDequantGemm;
    return f.act == ActType::kInt8PerToken ? Path::kIntMm : Path::kScaledMm;
  }
#ifdef JNAS_WITH_CUDA
  const int64_t K = w_.in_features, N = w_.out_features;
  const bool small = m <= cuda::kMaxGemvRows && dtype_ == at::kBFloat16;
  if (f.weight == WeightType::kInt && f.weight_bits == 4) {
    return small && K % 32 == 0 && w_.group % 32 == 0 ? Path::kGemvW4 : Path::kDequantGemm;
  }
  if (f.weight == WeightType::kInt && f.act == ActType::kNone) {
    return small && K % 16 == 0 ? Path::kGemvW8 : Path::kDequantGemm;
  }
  if (f.act == ActType::kInt8PerToken) {
    if (small && K % 16 == 0) return Path::kGemvW8A8;
    return K % 8 == 0 && N % 8 == 0 ? Path::kIntMm : Path::kReference;
  }
  if (f.act == ActType::kFp8E4M3PerToken) {
    if (small && K % 16 == 0) return Path::kGemvFp8;
    return K % 16 == 0 && N % 16 == 0 ? Path::kScaledMm : Path::kReference;
  }
#endif
  return Path::kReference;
}

std::string QuantLinear::path_for(int64_t m) const {
  switch (choose(m)) {
    case Path::kDense: return device_.is_cpu() ? "blas" : "gemv_bf16|cublas";
    case Path::kGemvW4: return "gemv_w4a16";
    case Path::kGemvW8: return "gemv_w8a16";
    case Path::kDequantGemm: return device_.is_cpu() ? "dequant_cache+blas" : "dequant+cublas";
    case Path::kGemvW8A8: return "quant_act+gemv_w8a8";
    case Path::kIntMm: return "quant_act+int_mm+epilogue";
    case Path::kGemvFp8: return "quant_act+gemv_fp8";
    case Path::kScaledMm: return "quant_act+scaled_mm";
    case Path::kGgml: return "ggml_act_quant+dequant_cache+blas";
    case Path::kReference: return "reference";
  }
  return "?";
}

at::Tensor QuantLinear::forward(const at::Tensor& x) const {
  TORCH_CHECK(defined(), "QuantLinear: forward on an empty layer");
  TORCH_CHECK(x.size(-1) == w_.in_features, "QuantLinear: expected x with ", w_.in_features,
              " features, got ", x.sizes());
  if (!w_.format->quantized()) return kernels::linear(x, dense_);
  auto sizes = x.sizes().vec();
  sizes.back() = w_.out_features;
  return run(x.reshape({-1, w_.in_features}), nullptr).view(sizes);
}

at::Tensor QuantLinear::forward_add(const at::Tensor& x, const at::Tensor& residual) const {
  if (!w_.format->quantized()) return kernels::linear_add(x, dense_, residual);
  const int64_t m = x.numel() / w_.in_features;
  if (is_gemv(choose(m))) {
    at::Tensor r2d = residual.reshape({m, w_.out_features}).contiguous();
    return run(x.reshape({m, w_.in_features}), &r2d).view(residual.sizes());
  }
  return residual + forward(x);
}

namespace {

// x.q [..., K], x.scale [..., 1] -> 2-D views, checked against the format and K.
QuantizedAct flat_quantized(const QuantizedAct& x, const QuantFormat& f, int64_t K) {
  TORCH_CHECK(f.act != ActType::kNone, "QuantLinear: ", f.name,
              " keeps activations unquantized; pass x itself, not its quantized form");
  const at::ScalarType want = f.act == ActType::kFp8E4M3PerToken ? at::kFloat8_e4m3fn : at::kChar;
  TORCH_CHECK(x.q.defined() && x.scale.defined() && x.q.scalar_type() == want &&
                  x.scale.scalar_type() == at::kFloat,
              "QuantLinear: ", f.name, " expects codes of ", want, " and fp32 scales");
  TORCH_CHECK(x.q.dim() >= 1 && x.q.size(-1) == K, "QuantLinear: expected codes with ", K,
              " features, got ", x.q.sizes());
  const int64_t m = x.q.numel() / K;
  TORCH_CHECK(x.scale.numel() == m, "QuantLinear: ", m, " rows of codes but ", x.scale.numel(),
              " scales");
  return {x.q.reshape({m, K}).contiguous(), x.scale.reshape({m, 1}).contiguous()};
}

}  // namespace

at::Tensor QuantLinear::forward(const QuantizedAct& x) const {
  TORCH_CHECK(defined(), "QuantLinear: forward on an empty layer");
  const QuantizedAct x2d = flat_quantized(x, *w_.format, w_.in_features);
  auto sizes = x.q.sizes().vec();
  sizes.back() = w_.out_features;
  return run_quantized(x2d, nullptr).view(sizes);
}

at::Tensor QuantLinear::forward_add(const QuantizedAct& x, const at::Tensor& residual) const {
  TORCH_CHECK(defined(), "QuantLinear: forward on an empty layer");
  const QuantizedAct x2d = flat_quantized(x, *w_.format, w_.in_features);
  const int64_t m = x2d.q.size(0);
  if (is_gemv(choose(m))) {
    at::Tensor r2d = residual.reshape({m, w_.out_features}).contiguous();
    return run_quantized(x2d, &r2d).view(residual.sizes());
  }
  return residual + run_quantized(x2d, nullptr).view(residual.sizes());
}

QuantizedAct QuantLinear::quantize_input(const at::Tensor& x2d) const {
#ifdef JNAS_WITH_CUDA
  if (x2d.is_cuda() && dtype_ == at::kBFloat16) {
    auto [q, s] = w_.format->act == ActType::kFp8E4M3PerToken ? cuda::quantize_act_fp8(x2d)
                                                               : cuda::quantize_act_int8(x2d);
    return {q, s};
  }
#endif
  return quantize_act_ref(x2d, *w_.format);
}

at::Tensor QuantLinear::run(const at::Tensor& x2d_in, const at::Tensor* residual2d) const {
  [[maybe_unused]] const QuantFormat& f = *w_.format;
  const int64_t m = x2d_in.size(0);
  at::Tensor x2d = x2d_in.contiguous();
  switch (choose(m)) {
    case Path::kDense:
      return kernels::linear(x2d, dense_);
    case Path::kGgml:
      // ggml-cpu's matmul: activations quantized to the weight's vec_dot_type, then dot products
      // with the weight's values; the same numbers up to fp32 summation order (docs/formats.md),
      // rounded once to the layer's dtype.
      return at::linear(ggml_fake_act(x2d.to(dense_.scalar_type()), f), dense_).to(dtype_);
    case Path::kDequantGemm:
      if (device_.is_cpu()) return at::linear(x2d, dense_);
#ifdef JNAS_WITH_CUDA
      if (f.weight_bits == 4) {
        return at::linear(x2d, cuda::dequant_w4(w_.data, w_.scale, w_.zero, w_.group, dtype_));
      }
      return at::linear(x2d, cuda::dequant_w8(w_.data, w_.scale, dtype_));
    case Path::kGemvW4:
      return cuda::gemv_w4a16(x2d, w_.data, w_.scale, w_.zero, w_.group, residual2d);
    case Path::kGemvW8:
      return cuda::gemv_w8a16(x2d, w_.data, w_.scale, residual2d);
#endif
      break;
    case Path::kGemvW8A8:
    case Path::kIntMm:
    case Path::kGemvFp8:
    case Path::kScaledMm:
      return run_quantized(quantize_input(x2d), residual2d);
    case Path::kReference:
    default:
      break;
  }
  warn_reference(w_, m, device_);
  at::Tensor y = linear_ref(x2d, unpack(w_), dtype_);
  return residual2d != nullptr ? *residual2d + y : y;
}

at::Tensor QuantLinear::run_quantized(const QuantizedAct& x, const at::Tensor* residual2d) const {
  const int64_t m = x.q.size(0);
  switch (choose(m)) {
#ifdef JNAS_WITH_CUDA
    case Path::kGemvW8A8:
      return cuda::gemv_w8a8(x.q, x.scale, w_.data, w_.scale, residual2d);
    case Path::kGemvFp8:
      return cuda::gemv_fp8(x.q, x.scale, w_.data, w_.scale, residual2d);
#endif
    case Path::kIntMm: {
#ifdef JNAS_WITH_CUDA
      if (x.q.is_cuda()) {
        at::Tensor qx = x.q;
        if (m < kIntMmMinRows) qx = at::constant_pad_nd(qx, {0, 0, 0, kIntMmMinRows - m});
        at::Tensor acc = at::_int_mm(qx, w_.data.t()).narrow(0, 0, m);
        return cuda::scale_epilogue(acc, x.scale, w_.scale, nullptr);
      }
#endif
      return scale_epilogue_ref(at::_int_mm(x.q, w_.data.t()), x.scale, scale_row_, dtype_);
    }
    case Path::kScaledMm: {
#ifdef JNAS_WITH_CUDA
      if (x.q.is_cuda()) {
        // Row-wise scaling: scale_a [M, 1], scale_b [1, N], fp32; e4m3 operands, bf16 out. Fast
        // accumulation (no periodic promotion of the tensor cores' fp8 partial sums to fp32):
        // 1.74x instead of 1.57x over bf16 at 2048 x 4096 -> 14336 on an H200, for a relative
        // error of 1.9e-3 instead of 1.7e-3 against fp64 on the same fp8 operands, far under
        // e4m3's own rounding (scripts/fp8_accum_probe.py, docs/benchmarks.md).
        return at::_scaled_mm(x.q, w_.data.t(), x.scale, scale_row_, {}, {}, dtype_, /*use_fast_accum=*/true);
      }
#endif
      // The CPU kernel takes per-tensor scales only: unit scales, fp32 out, then ours.
      at::Tensor one = at::ones({}, at::kFloat);
      at::Tensor acc = at::_scaled_mm(x.q, w_.data.t(), one, one, {}, {}, at::kFloat);
      return scale_epilogue_ref(acc, x.scale, scale_row_, dtype_);
    }
    default:
      break;
  }
  warn_reference(w_, m, device_);
  at::Tensor y = linear_ref(x, unpack(w_), dtype_);
  return residual2d != nullptr ? *residual2d + y : y;
}

}  // namespace jointnas::quant
