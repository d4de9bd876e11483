// Per-token activation quantization on the device: the code of one value (int8 or e4m3), the
// row's scale and the block-wide amax, shared by quantize_act (act_quant_cuda.cu) and the
// producers that quantize their own output (quantizing_producers_cuda.cu), so that both round
// the same way. Included by .cu files only.
//
// quantize_act_*: one block per row of x. The row is read once into registers (up to 8 16-byte
// vectors per thread, K <= 16384), the block reduces amax exactly (a max never rounds), then every
// element is divided by the scale, rounded as the IEEE division quantize_act_ref does on the CPU
// wherever the code could differ (through the reciprocal and one correction: scale_division.h).
// (ATen on CUDA divides by a scalar through its reciprocal, so quantize_act_ref run on a CUDA
// tensor can differ from this kernel by an ulp of the scale; compare against the CPU.)
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "jointnas/quant/aq_common_cuda.h"
#include "jointnas/quant/format.h"
#include "jointnas/quant/scale_division.h"

namespace jointnas::quant::cuda::aq {

constexpr int kQuantThreads = 256;
constexpr int kQuantMaxVecs = 8;  // 16-byte vectors per thread held in registers

template <bool kFp8>
struct ActQuant;

template <>
struct ActQuant<false> {
  static constexpr float kQmax = 127.0f;
  using Out = int8_t;
  // clamp(rint(v / s), -127, 127): rintf rounds half to even as at::round.
  static __device__ __forceinline__ uint32_t one(float v, const ScaleDivision& s) {
    const float r = fminf(fmaxf(rintf(s(v)), -127.0f), 127.0f);
    return static_cast<uint32_t>(static_cast<int>(r)) & 0xffu;
  }
  static __device__ __forceinline__ uint32_t four(float a, float b, float c, float d, const ScaleDivision& s) {
    return one(a, s) | (one(b, s) << 8) | (one(c, s) << 16) | (one(d, s) << 24);
  }
};

template <>
struct ActQuant<true> {
  static constexpr float kQmax = kFp8E4M3Max;
  using Out = __nv_fp8_storage_t;
  // clamp(v / s, -448, 448) then round-to-nearest-even to e4m3 (the satfinite cvt equals
  // c10::Float8_e4m3fn's conversion on the clamped range, subnormals included).
  static __device__ __forceinline__ float clamped(float v, const ScaleDivision& s) {
    return fminf(fmaxf(s(v), -kFp8E4M3Max), kFp8E4M3Max);
  }
  static __device__ __forceinline__ uint32_t two(float a, float b, const ScaleDivision& s) {
    return __nv_cvt_float2_to_fp8x2(make_float2(clamped(a, s), clamped(b, s)), __NV_SATFINITE,
                                    __NV_E4M3);
  }
  static __device__ __forceinline__ uint32_t one(float v, const ScaleDivision& s) {
    return __nv_cvt_float_to_fp8(clamped(v, s), __NV_SATFINITE, __NV_E4M3);
  }
  static __device__ __forceinline__ uint32_t four(float a, float b, float c, float d, const ScaleDivision& s) {
    return two(a, b, s) | (two(c, d, s) << 16);
  }
};

// Block-wide max of non-negative values (0 is the identity); blockDim.x is a multiple of 32.
__device__ __forceinline__ float block_max(float v, float* red) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, off));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float m = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) m = fmaxf(m, red[w]);
  return m;
}

template <bool kFp8>
__device__ __forceinline__ float row_scale(float amax) {
  // As the reference: s = amax / qmax (IEEE), 1 where that is 0 (an all-zero row).
  const float s = __fdiv_rn(amax, ActQuant<kFp8>::kQmax);
  return s == 0.0f ? 1.0f : s;
}

// x [M, K] bf16 -> codes [M, K] (int8 or float8_e4m3fn) and scales [M, 1] fp32, bitwise
// quantize_act_ref; `fn` names the caller in error messages. Instantiated for both kinds.
template <bool kFp8>
std::pair<at::Tensor, at::Tensor> quantize_act(const at::Tensor& x, const char* fn);

}  // namespace jointnas::quant::cuda::aq
