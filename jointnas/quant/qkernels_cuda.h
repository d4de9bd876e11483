// Our own CUDA kernels for the quantized formats (defined in CUDA builds only; callers are guarded
// by JNAS_WITH_CUDA, the constants are read by the cost model everywhere). Layouts are those of
// pack.h. Every kernel has a reference in quantize.h and a cuda-labelled test against it
// (tests/quant/wo_kernels_cuda_test.cpp, aq_kernels_cuda_test.cpp). One file per kernel family:
// gemv_w4_cuda.cu (register-staged int4 GEMV and the dispatch), gemv_w4_tc_cuda.cu (int4 on the
// tensor cores), gemv_w8a16_cuda.cu, dequant_cuda.cu, act_quant_cuda.cu (per-token activation
// quantization), quantizing_producers_cuda.cu, gemv_a8_cuda.cu (w8a8 / fp8 GEMVs),
// scale_epilogue_cuda.cu.
#pragma once

#include <ATen/core/Tensor.h>

namespace jointnas::quant::cuda {

// Rows of x the GEMV kernels accept (each weight byte is read once and used for every row).
inline constexpr int64_t kMaxGemvRows = 4;

// Weight-only GEMV: x [M, K] bf16 (M <= kMaxGemvRows, contiguous) -> y [M, N] bf16, fp32
// accumulation; with `residual` ([M, N] bf16) the epilogue returns residual + bf16(x W^T) (two
// roundings, as the unfused expression). w4: data [N, K / 2] uint8, scale [N, K / g] bf16, zero
// [N, K / g] uint8, needs K % 32 == 0 and g % 32 == 0. w8: data [N, K] int8, scale [N, 1] fp32,
// needs K % 16 == 0.
// `variant` (M = 1, benchmarks) forces rows per warp R and vectors per row U as R * 10 + U of the
// register-staged kernel: 14, 18, 24, 42, 44, 81, 82; 0 = the default. 100 (M = 1..4): tensor
// cores (mma.sync m16n8k16 bf16 on exact (q - z), fp32 scale per group), 16 rows per warp, warps
// per 16-row tile chosen from K; 101 / 102 / 104 / 108 force 1 / 2 / 4 / 8 warps per tile.
at::Tensor gemv_w4a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor& zero, int64_t group, const at::Tensor* residual,
                      int variant = 0);
at::Tensor gemv_w8a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor* residual);

// Dequantize a packed weight to [N, K] in `dtype` (bf16), value = bf16((q - zero) * scale)
// computed in fp32: bitwise equal to dequantize_ref. For large M: dequantize, then cuBLAS.
at::Tensor dequant_w4(const at::Tensor& data, const at::Tensor& scale, const at::Tensor& zero,
                      int64_t group, c10::ScalarType dtype);
at::Tensor dequant_w8(const at::Tensor& data, const at::Tensor& scale, c10::ScalarType dtype);

// Fused per-token activation quantization, bitwise equal to quantize_act_ref: x [M, K] bf16 ->
// q [M, K] int8 (or float8_e4m3fn), scale [M, 1] fp32.
std::pair<at::Tensor, at::Tensor> quantize_act_int8(const at::Tensor& x);
std::pair<at::Tensor, at::Tensor> quantize_act_fp8(const at::Tensor& x);

// Producers fused with that quantization (one kernel, the produced bf16 row never written):
// bitwise quantize_act_*(kernels::rms_norm(x, w, eps)) for x [M, K], w [K] bf16, and
// quantize_act_*(kernels::silu_mul(gu)) for gu [M, 2I] bf16 -> codes [M, I]. Rows that are not a
// multiple of 8 values, not 16-byte aligned or longer than 16384 run the unfused pair.
// `variant` (benchmarks): threads per row of SiLU * up, 256 / 512 / 1024; 0 = the default (as many
// as the row can use, up to 1024).
std::pair<at::Tensor, at::Tensor> rms_norm_quantize_act(const at::Tensor& x, const at::Tensor& w,
                                                        double eps, bool fp8);
std::pair<at::Tensor, at::Tensor> silu_mul_quantize_act(const at::Tensor& gu, bool fp8, int variant = 0);
// The attention output for o_proj: attn [B, nh, T, hd] bf16 (unit stride along hd) -> codes
// [B * T, nh * hd], bitwise quantize_act_*(attn.transpose(1, 2).reshape(B * T, nh * hd)), read
// through the strides (no transposed copy).
std::pair<at::Tensor, at::Tensor> heads_quantize_act(const at::Tensor& attn, bool fp8);

// Integer / e4m3 GEMV for the W8A8 formats at small M: qx [M, K] (M <= kMaxGemvRows) with
// per-token scales sx [M, 1] fp32, weight data [N, K] with per-row scales sw [N, 1] fp32 ->
// y [M, N] bf16 = bf16(float(dot) * sx * sw) (+ residual as above). int8: exact int32 dot (dp4a),
// needs K % 16 == 0; fp8: products exact in fp32, fp32 accumulation, needs K % 16 == 0.
at::Tensor gemv_w8a8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                     const at::Tensor& sw, const at::Tensor* residual);
at::Tensor gemv_fp8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                    const at::Tensor& sw, const at::Tensor* residual);

// Epilogue of torch's _int_mm: acc [M, N] int32 -> bf16(float(acc) * sx * sw) (+ residual).
at::Tensor scale_epilogue(const at::Tensor& acc, const at::Tensor& sx, const at::Tensor& sw,
                          const at::Tensor* residual);

}  // namespace jointnas::quant::cuda
