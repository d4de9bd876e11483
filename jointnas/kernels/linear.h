// y = x W^T with a bandwidth-bound GEMV for the decode case (one token, bf16, CUDA); every other
// case goes to at::linear (cuBLAS / the CPU BLAS).
#pragma once

#include <ATen/core/Tensor.h>

namespace jointnas::kernels {

// x [..., K], w [N, K] -> [..., N]. Uses the GEMV kernel when x holds a single row of K, both are
// bf16 CUDA tensors, w is contiguous and K % 8 == 0 (16-byte vector loads); else at::linear.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w);
// residual + x W^T; at M = 1 on CUDA bf16 the add happens in the GEMV's epilogue (one kernel,
// same two roundings as the unfused expression).
at::Tensor linear_add(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual);
// Logits: x W^T in fp32, the fp32 accumulation not rounded to the compute dtype. On CUDA with
// bf16 / fp16 operands: the GEMV with an fp32 output at one row, cuBLAS with an fp32 output
// matrix otherwise; elsewhere linear(x, w) converted to fp32. Rounding ref-17m's bf16 logits to
// bf16 tied or flipped the top two on ~0.8 % of wiki.test.raw positions (docs/benchmarks.md).
at::Tensor linear_logits(const at::Tensor& x, const at::Tensor& w);
// True when linear() would take the GEMV path for these operands.
bool gemv_applies(const at::Tensor& x, const at::Tensor& w);
// The GEMV itself (CUDA builds; throws elsewhere). x [K] bf16, w [N, K] bf16 -> y [N] bf16.
// `variant` 0 picks the default tiling; R*10+U (rows per warp, loads in flight per row) forces
// one, for benchmarks: 14, 18, 24, 42, 44.
at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w, int variant = 0);

}  // namespace jointnas::kernels
