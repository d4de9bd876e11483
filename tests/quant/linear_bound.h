// Derived elementwise error bounds for QuantLinear paths vs linear_ref (double), shared by the
// CPU and CUDA tests. With mag = |x| @ |W_hat|^T (the sum of |products|, double) and u the unit
// roundoff of the compute dtype (2^-24 fp32, 2^-8 bf16):
//   weight-only  (u_w + K 2^-24 + r) mag + u |ref|
//       u_w = u when the path rounds the dequantized weight to the compute dtype (CPU cache,
//       dequantize + cuBLAS), 0 when the kernel multiplies in fp32 (our GEMVs); K 2^-24 is fp32
//       accumulation in any order; r = u when cuBLAS may reduce split-K partials in bf16
//       (PyTorch allows it by default), else 0; u |ref| is the output rounding.
//   w8a8         (3 2^-24 + u) |ref|: the int32 dot is exact; two fp32 products, one int->fp32
//       conversion, one output rounding.
//   fp8_e4m3     (a + K 2^-24) mag_q + (3 2^-24 + u) |ref|: e4m3 products are exact, summed in
//       fp32 (our GEMV, CPU: a = 0) or by Hopper tensor cores, whose fp8 accumulator keeps ~14
//       bits (DeepSeek-V3 report, Sec. 3.3.2). QuantLinear asks for fast accumulation (no fp32
//       promotion): the whole K is summed there, at most ceil(K / 32) additions (one per k-step of
//       32) each off by <= 2^-14 of a partial sum bounded by mag_q, so a = ceil(K / 32) 2^-14;
//       mag_q uses the quantized activations and weights times both scales.
#pragma once

#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/quant/quantize.h"

namespace jointnas::quant::testing {

struct PathTraits {
  bool weight_rounded = false;      // dequantized weight rounded to the compute dtype
  bool reduced_reduction = false;   // bf16 split-K reductions possible (cuBLAS)
  bool fp8_tensor_cores = false;    // Hopper fp8 accumulation
};

inline at::Tensor linear_bound(const at::Tensor& x, const QuantizedWeight& qw, const at::Tensor& ref,
                               c10::ScalarType dtype, PathTraits p) {
  const QuantFormat& f = *qw.format;
  const double u = dtype == at::kBFloat16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -24);
  const double acc = static_cast<double>(qw.q.size(1)) * std::ldexp(1.0, -24);
  if (f.act == ActType::kNone) {
    at::Tensor mag = at::matmul(x.to(at::kDouble).abs(), dequantize_ref(qw, at::kDouble).abs().t());
    const double a = (p.weight_rounded ? u : 0.0) + acc + (p.reduced_reduction ? u : 0.0);
    return a * mag + u * ref.abs();
  }
  at::Tensor b = (3 * std::ldexp(1.0, -24) + u) * ref.abs();
  if (f.act == ActType::kFp8E4M3PerToken) {
    const QuantizedAct qa = quantize_act_ref(x, f);
    at::Tensor mag = at::matmul(qa.q.to(at::kFloat).to(at::kDouble).abs(),
                                qw.q.to(at::kFloat).to(at::kDouble).abs().t()) *
                     qa.scale.to(at::kDouble) * qw.scale.to(at::kDouble).reshape({-1});
    const double k_steps = std::ceil(static_cast<double>(qw.q.size(1)) / 32.0);
    b = b + ((p.fp8_tensor_cores ? k_steps * std::ldexp(1.0, -14) : 0.0) + acc) * mag;
  }
  return b;
}

inline ::testing::AssertionResult within_bound(const at::Tensor& y, const at::Tensor& ref,
                                               const at::Tensor& b) {
  if (y.sizes() != ref.sizes()) {
    return ::testing::AssertionFailure() << "shape " << y.sizes() << " vs " << ref.sizes();
  }
  at::Tensor excess = (y.to(at::kCPU).to(at::kDouble) - ref.to(at::kCPU)).abs() - b.to(at::kCPU);
  const int64_t bad = (excess > 0).sum().item<int64_t>();
  if (bad == 0 && !y.isnan().any().item<bool>()) return ::testing::AssertionSuccess();
  const int64_t i = excess.reshape({-1}).argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << bad << " of " << y.numel() << " elements out of bound; worst at flat index " << i
         << ": got " << y.to(at::kCPU).reshape({-1})[i].item<double>() << ", ref "
         << ref.to(at::kCPU).reshape({-1})[i].item<double>() << ", bound "
         << b.to(at::kCPU).reshape({-1})[i].item<double>();
}

}  // namespace jointnas::quant::testing
