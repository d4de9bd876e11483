// What the weight-only GEMV kernels share (gemv_w4_cuda.cu, gemv_w4_tc_cuda.cu,
// gemv_w8a16_cuda.cu): x [M, K] staged in shared memory in a bank-conflict-free layout, the warp
// reduction and epilogue, the register budget, and on the host the checks of x and the residual,
// shared-memory sizing, the persistent grid and the split of an x too large for shared memory.
// Included by .cu files only.
//
// The GEMVs follow kernels/gemv_cuda.cu: memory-bound, so built for bytes in flight. x [M, K] is
// staged in shared memory (bf16, or fp32 at M = 1; padded so that the warp's 16-byte reads are
// bank-conflict free) while the first weight loads are in flight; each warp owns R rows and each
// lane issues R x U independent 16-byte weight loads (plus the matching scale / zero loads)
// before using any of them; 8 warps per block; warp-shuffle reduction; the optional residual
// epilogue rounds twice, as the unfused `r + linear(x)`. Every weight byte is loaded once and
// used for all M rows of x. The products with bf16 x are exact in fp32 (<= 12 significant bits),
// summed in fp32; for w4 the group scale multiplies the 32-column partial sum (each 16-byte
// vector lies inside one group since group % 32 == 0).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/staging_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/wo_common_cuda.h"

namespace jointnas::quant::cuda::wo {

// x in shared memory. Lane l reads 16-byte pieces of weight vector l's columns, i.e. lanes
// are kVecBytes = 128 (w4, fp32 x), 64 (w4, bf16 x) or 32 (w8, bf16 x) bytes apart, and a
// 128-bit access phase of 8 lanes would hit 1, 2 or 4 of the 8 16-byte bank groups. 16 bytes
// of padding after every 128 spread every 8 consecutive lanes over all 8 groups in all three
// cases, and, unlike an XOR swizzle, keep each lane's addresses at constant offsets from one
// base (no address arithmetic per load). Rows of x start at multiples of x_row_bytes (the row
// rounded up to 128 bytes, padded).
__device__ __forceinline__ int pad128(int b) { return b + ((b >> 7) << 4); }

inline int64_t x_row_bytes(int64_t K, int64_t x_bytes) {
  const int64_t b = (K * x_bytes + 127) / 128 * 128;
  return b + b / 8;
}

// Copies x [M, K] bf16 (k8 16-byte units per row) into shared memory: as bf16, or with kF32
// converted to fp32, in the padded layout above.
template <int M, bool kF32>
__device__ __forceinline__ void stage_x(char* xs, const int4* __restrict__ x, int k8,
                                        int row_bytes) {
  kernels::load_staged<kThreads>(x, M * k8, [&](int i, const int4& v) {
    const int m = M == 1 ? 0 : i / k8, t = i - m * k8;
    char* row = xs + m * row_bytes;
    if constexpr (kF32) {
      float f[8];
      bf16x8_to_float(v, f);
      *reinterpret_cast<float4*>(row + pad128(32 * t)) = make_float4(f[0], f[1], f[2], f[3]);
      *reinterpret_cast<float4*>(row + pad128(32 * t + 16)) = make_float4(f[4], f[5], f[6], f[7]);
    } else {
      *reinterpret_cast<int4*>(row + pad128(16 * t)) = v;
    }
  });
}

// The start of every persistent weight-only GEMV: the warp prefetches the first chunk of its first
// R rows (row_bytes each) while the previous kernel finishes (programmatic dependent launch), waits
// for it, lets the next kernel launch, then the block stages x once (the grid is persistent: about
// one wave, each warp looping over row groups).
template <int M, int R, int U, bool kF32X>
__device__ __forceinline__ void gemv_prologue(const int4* __restrict__ data, int64_t row_bytes, int64_t n_rows,
                                              char* xs, const int4* __restrict__ x, int k8, int x_stride) {
  kernels::pdl::prefetch_rows<R>(data, row_bytes, (int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5)) * R, n_rows,
                                 U * 4, threadIdx.x & 31);
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  stage_x<M, kF32X>(xs, x, k8, x_stride);
  __syncthreads();
}

// The 8 x values of columns [8c, 8c + 8) of a weight vector whose x starts at `vec`, as fp32.
template <bool kF32>
__device__ __forceinline__ void load_x8(const char* vec, int c, float (&f)[8]) {
  if constexpr (kF32) {
    const float4 a = *reinterpret_cast<const float4*>(vec + 32 * c);
    const float4 b = *reinterpret_cast<const float4*>(vec + 32 * c + 16);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
  } else {
    bf16x8_to_float(*reinterpret_cast<const int4*>(vec + 16 * c), f);
  }
}

// load_x8 for the M rows of x, x_stride bytes apart.
template <int M, bool kF32>
__device__ __forceinline__ void load_x8_rows(const char* vec, int x_stride, int c, float (&xf)[M][8]) {
#pragma unroll
  for (int m = 0; m < M; ++m) load_x8<kF32>(vec + m * x_stride, c, xf[m]);
}

// acc[m][j % P] += w[j] * x[m][j]: 8 dequantized weights of one row against the M rows of x, in P
// independent partial sums (FMA chains of length 8 / P).
template <int M, int P>
__device__ __forceinline__ void fma8_rows(const float (&w)[8], const float (&xf)[M][8], float (&acc)[M][P]) {
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[m][j % P] = fmaf(w[j], xf[m][j], acc[m][j % P]);
}

// Warp-reduces acc[r][m], multiplies the sum by row_scale[r], and lets lane r * M + m store
// y[m, row0 + r] (rows past N are not written). With a residual: bf16(r + bf16(acc)), the rounding
// of the unfused expression.
template <int M, int R>
__device__ __forceinline__ void reduce_store(float (&acc)[R][M], const float (&row_scale)[R],
                                             int lane, int64_t row0, int64_t n_rows,
                                             __nv_bfloat16* __restrict__ y,
                                             const __nv_bfloat16* __restrict__ residual) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], off);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (lane == r * M + m && row0 + r < n_rows) {
        const int64_t i = m * n_rows + row0 + r;
        const __nv_bfloat16 out = __float2bfloat16_rn(acc[r][m] * row_scale[r]);
        y[i] = residual == nullptr
                   ? out
                   : __float2bfloat16_rn(__bfloat162float(residual[i]) + __bfloat162float(out));
      }
    }
  }
}

// Register budget of the GEMVs as resident blocks of 256 threads per SM (2: <= 128 registers).
// The grids are persistent (warps loop over row groups), so 16 warps per SM with 8 x 16 bytes in
// flight per lane cover the memory latency; 3 blocks (<= 80 registers) made the M = 1 w4 kernel
// spill. M = 3, 4 (compute-bound, 12-16 accumulators) keep all their registers (one block).
template <int M>
inline constexpr int kMinBlocks = M <= 2 ? 2 : 1;

// ---------------------------------------------------------------------------------------------
// Host side: checks of x and the residual, launch configuration.

// x [M, K] bf16 with 1 <= M <= kMaxGemvRows; returns M.
inline int64_t check_gemv_x(const char* fn, const at::Tensor& x, int64_t K, c10::Device device) {
  check_cuda_matrix(fn, "x", x);
  const int64_t M = x.size(0);
  TORCH_CHECK(M >= 1 && M <= kMaxGemvRows, fn, ": expected 1 <= M <= ", kMaxGemvRows,
              " rows of x, got M = ", M);
  check_tensor(fn, "x", x, at::kBFloat16, {M, K}, device);
  check_aligned(fn, "x", x, 16);
  return M;
}

inline const at::Tensor* check_residual(const char* fn, const at::Tensor* residual, int64_t M, int64_t N,
                                        c10::Device device) {
  if (residual == nullptr) return nullptr;
  check_tensor(fn, "residual", *residual, at::kBFloat16, {M, N}, device);
  return residual;
}

inline size_t smem_limit() { return at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin; }

// x is staged whole in shared memory: M padded rows of K * (2 or 4) bytes; above 48 KiB the
// kernel must opt in.
inline size_t gemv_smem(const char* fn, const void* kernel, int64_t M, int64_t K, int64_t x_bytes) {
  const size_t smem = static_cast<size_t>(M * x_row_bytes(K, x_bytes));
  const size_t limit = smem_limit();
  TORCH_CHECK(smem <= limit, fn, ": x [", M, ", ", K, "] needs ", smem,
              " bytes of shared memory, the device allows ", limit);
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  return smem;
}

// One wave of resident blocks (occupancy x SMs), never more blocks than row groups: the GEMVs
// loop over row groups, so x is staged once per resident block.
inline unsigned persistent_blocks(const void* kernel, size_t smem, int64_t n_rows, int rows_per_warp) {
  // The occupancy query is cached per (kernel, shared memory): decode calls it every step.
  static std::mutex mu;
  static std::map<std::pair<const void*, size_t>, int> cache;
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find({kernel, smem});
    if (it == cache.end()) {
      C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem));
      it = cache.emplace(std::make_pair(kernel, smem), per_sm).first;
    }
    per_sm = it->second;
  }
  const int64_t wave = static_cast<int64_t>(std::max(per_sm, 1)) *
                       at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t needed = (n_rows + kWarps * rows_per_warp - 1) / (kWarps * rows_per_warp);
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(wave, needed)));
}

inline const __nv_bfloat16* bf16_ptr(const at::Tensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const __nv_bfloat16*>(t->data_ptr());
}

// When x [M, K] does not fit shared memory (M = 4 beyond K ~ 25800), the rows of x are split in
// two calls (the weight is then read twice, still far less than the reference path).
template <typename Gemv>
at::Tensor split_rows(const at::Tensor& x, const at::Tensor* residual, Gemv gemv) {
  const int64_t M = x.size(0), h = M / 2;
  at::Tensor r0, r1;
  if (residual != nullptr) r0 = residual->narrow(0, 0, h), r1 = residual->narrow(0, h, M - h);
  at::Tensor y0 = gemv(x.narrow(0, 0, h), residual != nullptr ? &r0 : nullptr);
  at::Tensor y1 = gemv(x.narrow(0, h, M - h), residual != nullptr ? &r1 : nullptr);
  return at::cat({y0, y1}, 0);
}

// The tensor-core w4 GEMV (gemv_w4_tc_cuda.cu), which gemv_w4a16 dispatches to by shape or
// variant: the shared memory it needs for x [M, K] (the reduction buffers and M permuted rows of
// x), and the call itself for variant 100 (auto warps per tile) or 101 / 102 / 104 / 108 (1, 2,
// 4, 8 warps per tile); y [M, N] bf16 is written.
size_t w4_tc_smem_bytes(int64_t M, int64_t K);
void gemv_w4_tc(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y,
                int variant);

}  // namespace jointnas::quant::cuda::wo
