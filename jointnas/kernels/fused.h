// Fused elementwise ops of the Llama block: RMSNorm, RoPE + KV-cache write, SiLU(gate) * up.
// Each has a plain LibTorch reference (fused_ref.cpp, the transformers numerics) and a CUDA
// kernel (fused_cuda.cu) that replaces 5-20 small launches with one, which is what keeps the
// CUDA-graph decode step near the memory floor.
#pragma once

#include <ATen/core/Tensor.h>

namespace jointnas::kernels {

// y = w * cast(x * rsqrt(mean(x^2) + eps)), statistics in fp32 (transformers LlamaRMSNorm).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor rms_norm_ref(const at::Tensor& x, const at::Tensor& w, double eps);

// qkv [B, T, (nh + 2 nkv) * hd] (fused projection output, contiguous); positions int64 [T];
// cos/sin fp32 tables [P, hd] (rotate-half layout). Returns q [B, nh, T, hd] rotated; writes the
// rotated k and the v of token t into k_cache/v_cache [B, nkv, L, hd] at slot positions[t].
at::Tensor rope_and_cache(const at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& cos,
                          const at::Tensor& sin, int64_t nh, int64_t nkv, int64_t hd,
                          at::Tensor& k_cache, at::Tensor& v_cache);
at::Tensor rope_and_cache_ref(const at::Tensor& qkv, const at::Tensor& positions,
                              const at::Tensor& cos, const at::Tensor& sin, int64_t nh, int64_t nkv,
                              int64_t hd, at::Tensor& k_cache, at::Tensor& v_cache);

// gu [.., 2I] (gate then up) -> silu(gate) * up [.., I], rounding like transformers (silu output
// in the compute dtype, then the product).
at::Tensor silu_mul(const at::Tensor& gu);
at::Tensor silu_mul_ref(const at::Tensor& gu);

// True when the fused CUDA kernels are compiled in (JNAS_WITH_CUDA builds).
bool has_cuda_kernels();

}  // namespace jointnas::kernels
