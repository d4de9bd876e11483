// CUDA kernel of the factorized supernet linear (CUDA builds only): one pass over a chunk of
// weight rows mixes the fake-quantized formats, bitwise as quant::fake_quant per format
// (tests/search/mix_cuda_test.cpp). See mix_cuda.cu.
#pragma once

#include <ATen/core/Tensor.h>

namespace jointnas::search::cuda {

enum MixKind : int { kMixNone = 0, kMixSymInt = 1, kMixAsymInt = 2, kMixFp8 = 3 };
inline constexpr int kMaxMixFormats = 8;  // a runtime loop: no register cost

struct MixFormat {
  int kind = kMixNone;
  int qmin = 0;
  float qmax = 0;  // integer qmax, or 448 for e4m3
  int group = 0;   // asymmetric integer formats: columns per scale (32, 64, 128)
};
struct MixSpec {
  int num_formats = 0;
  MixFormat formats[kMaxMixFormats];
};

// What the kernel writes, in fp32 before the one rounding to bf16: W_mix, times G where
// `times_g`, times row_scale[n] and col_scale[k] where given ([N] and [K], any float dtype).
struct MixOutput {
  const at::Tensor* row_scale = nullptr;
  const at::Tensor* col_scale = nullptr;
  bool times_g = false;
};

// w [N, K] bf16 contiguous, p [F] probabilities -> W_mix [N, K] bf16 = bf16(sum_f p_f
// bf16(FQ_f(w))), the sum in fp32 (scaled as `out` says). With g (G [N, K] bf16) and b ([K]):
// also sums [N, F] fp32, sums[n, f] = sum_k G[n, k] bf16(FQ_f(w))[n, k] b[k].
at::Tensor mix_weights(const at::Tensor& w, const MixSpec& spec, const at::Tensor& p,
                       const at::Tensor* g = nullptr, const at::Tensor* b = nullptr,
                       at::Tensor* sums = nullptr, const MixOutput& out = {});

// bf16(float(q) * scale[t]) for q [T, K] int8 or e4m3 and scale [T] / [T, 1] fp32: the
// dequantization of per-token activations (quant::dequantize_act_ref) in one pass, bitwise.
at::Tensor dequantize_act_bf16(const at::Tensor& q, const at::Tensor& scale);

}  // namespace jointnas::search::cuda
