// The GEMVs of the formats that quantize activations too (w8a8: int8 x int8, fp8_e4m3: e4m3 x
// e4m3, per-token activation scales, per-row weight scales) at small M; references in quantize.h.
//
// GEMVs: as kernels/gemv_cuda.cu, memory-bound, so built for bytes in flight: qx [M, K] is staged
// in shared memory, each warp owns R rows and each lane issues R x U independent 16-byte weight
// loads before using any of them (R x U = 8: 128 bytes per lane), 8 warps per block, warp-shuffle
// reduction. Every weight byte is loaded once and used for all M rows of x. The rows per warp
// follow N (R = 4 / 2 / 1 while there are still two blocks per SM); the first group of each
// warp's loads is prefetched into L2 before x is staged, so staging hides in that round trip.
//   int8: __dp4a, 4 per 16-byte vector per row of x; the int32 dot is exact (K * 127^2 < 2^31).
//   e4m3: qx is staged as fp16 (every e4m3 value is exact in fp16), weights go e4m3x2 -> f16x2 in
//         one cvt and f16 -> f32 exactly; products of two e4m3 (<= 8 significant bits) are exact
//         in fp32, so an FFMA adds each exact product to the fp32 sum with one rounding. No fp8
//         tensor cores: Hopper's fp8 MMA does not accumulate in full fp32.
// The epilogue is bf16((float(dot) * sx) * sw), two fp32 roundings in that order, and with a
// residual bf16(float(r) + float(that)), the unfused expression's two roundings.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/staging_cuda.h"
#include "jointnas/quant/aq_common_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/vec_cuda.h"

namespace jointnas::quant::cuda {
namespace {

using namespace aq;

// ---------------------------------------------------------------------------------------------
// GEMVs. Ops describe one activation type: how qx is staged in shared memory, how a 16-byte
// weight vector (16 values) and the matching values of a row of x are cut into slices, and the
// multiply-add of one slice into a sum.

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kLoadsPerLane = 8;  // R x U: 16-byte weight loads in flight per lane

// The int32 dot cannot overflow: K * 127 * 127 < 2^31.
constexpr int64_t kMaxDp4aK = (int64_t{1} << 31) / (127 * 127);

struct Int8Ops {
  using Acc = int;
  // Staged as is: xs[m * k16 + i] is the i-th 16-byte vector of row m.
  static constexpr int kXVecs = 1;   // staged 16-byte vectors per 16 values of a row of x
  static constexpr int kSlices = 1;  // a 16-byte weight vector is used in one piece
  struct Slice {
    int4 v;
  };
  static __device__ __forceinline__ void stage(const int4* __restrict__ qx, int4* xs, int n16,
                                               int k16) {
    kernels::load_staged<kThreads>(qx, n16, [&](int j, const int4& v) { xs[j] = v; });
  }
  static __device__ __forceinline__ Slice x_slice(const int4 (&x)[kXVecs], int) { return {x[0]}; }
  static __device__ __forceinline__ Slice w_slice(const int4& w, int) { return {w}; }
  static __device__ __forceinline__ int mac(const Slice& w, const Slice& x, int acc) {
    acc = __dp4a(w.v.x, x.v.x, acc);
    acc = __dp4a(w.v.y, x.v.y, acc);
    acc = __dp4a(w.v.z, x.v.z, acc);
    return __dp4a(w.v.w, x.v.w, acc);
  }
  static __device__ __forceinline__ float to_float(int acc) { return __int2float_rn(acc); }
};

__device__ __forceinline__ float2 e4m3x2_to_float2(uint32_t pair) {
  const __half2_raw h =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair & 0xffffu), __NV_E4M3);
  return __half22float2(__half2(h));
}

__device__ __forceinline__ float2 half2_bits_to_float2(uint32_t bits) {
  // A bit copy, not field extraction, so that no shift / permute is emitted: each half of the
  // register converts in place (HADD2.F32 .H0 / .H1).
  __half2 h;
  memcpy(&h, &bits, sizeof(h));
  return __half22float2(h);
}

struct Fp8Ops {
  using Acc = float;
  // Staged as fp16 in two planes so that a warp's 16-byte reads are consecutive (no bank
  // conflicts): xs[(2 m + p) * k16 + i] holds values 8p..8p+7 of the i-th 16-value group of row m.
  static constexpr int kXVecs = 2;
  // Converted to fp32 4 values (one weight word) at a time: fewer live registers than 16.
  static constexpr int kSlices = 4;
  struct Slice {
    float f[4];
  };
  static __device__ __forceinline__ void stage(const int4* __restrict__ qx, int4* xs, int n16,
                                               int k16) {
    kernels::load_staged<kThreads>(qx, n16, [&](int j, const int4& v) {
      const int m = j / k16, i = j - m * k16;
      uint32_t h[8];
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const uint32_t pair = c % 2 == 0 ? word(v, c / 2) & 0xffffu : word(v, c / 2) >> 16;
        const __half2_raw r =
            __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
        h[c] = static_cast<uint32_t>(r.x) | (static_cast<uint32_t>(r.y) << 16);
      }
      xs[(2 * m) * k16 + i] = make_int4(h[0], h[1], h[2], h[3]);
      xs[(2 * m + 1) * k16 + i] = make_int4(h[4], h[5], h[6], h[7]);
    });
  }
  // Values 4c..4c+3: plane c / 2, half2 words 2 (c % 2) and 2 (c % 2) + 1.
  static __device__ __forceinline__ Slice x_slice(const int4 (&x)[kXVecs], int c) {
    const float2 a = half2_bits_to_float2(word(x[c / 2], 2 * (c % 2)));
    const float2 b = half2_bits_to_float2(word(x[c / 2], 2 * (c % 2) + 1));
    return {{a.x, a.y, b.x, b.y}};
  }
  static __device__ __forceinline__ Slice w_slice(const int4& w, int c) {
    const uint32_t v = word(w, c);
    const float2 a = e4m3x2_to_float2(v & 0xffffu);
    const float2 b = e4m3x2_to_float2(v >> 16);
    return {{a.x, a.y, b.x, b.y}};
  }
  // Products of two e4m3 values are exact in fp32: each FFMA rounds once, as a sum of exact
  // products does.
  static __device__ __forceinline__ float mac(const Slice& w, const Slice& x, float acc) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc = fmaf(w.f[e], x.f[e], acc);
    return acc;
  }
  static __device__ __forceinline__ float to_float(float acc) { return acc; }
};

// U 16-byte vectors of each of the R weight rows, columns i + 32 u: all R x U loads first, then
// the arithmetic, so that they are all in flight together. With M * R >= 4 independent sums per
// lane, multiply-adds go straight into them; with fewer, each vector gets a partial sum from zero
// (independent of the others, so the U vectors' arithmetic overlaps) that is then added.
template <class Ops, int M, int R, int U>
__device__ __forceinline__ void gemv_step(const int4* const (&wr)[R], const int4* xs, int i,
                                          int k16, typename Ops::Acc (&acc)[M][R]) {
  using Acc = typename Ops::Acc;
  using Slice = typename Ops::Slice;
  constexpr bool kDirect = M * R >= 4;
  int4 v[R][U];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int u = 0; u < U; ++u) v[r][u] = __ldg(wr[r] + i + u * 32);
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    int4 xr[M][Ops::kXVecs];
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int p = 0; p < Ops::kXVecs; ++p) {
        xr[m][p] = xs[(Ops::kXVecs * m + p) * k16 + i + u * 32];
      }
    }
    Acc part[M][R];
#pragma unroll
    for (int c = 0; c < Ops::kSlices; ++c) {
      Slice xsl[M];
#pragma unroll
      for (int m = 0; m < M; ++m) xsl[m] = Ops::x_slice(xr[m], c);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const Slice ws = Ops::w_slice(v[r][u], c);
#pragma unroll
        for (int m = 0; m < M; ++m) {
          if constexpr (kDirect) {
            acc[m][r] = Ops::mac(ws, xsl[m], acc[m][r]);
          } else {
            part[m][r] = Ops::mac(ws, xsl[m], c == 0 ? Acc{0} : part[m][r]);
          }
        }
      }
    }
    if constexpr (!kDirect) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
#pragma unroll
        for (int r = 0; r < R; ++r) acc[m][r] += part[m][r];
      }
    }
  }
}

// M rows of x, R weight rows per warp, U 16-byte loads per row issued before use.
template <class Ops, int M, int R, int U>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_a8_kernel(const int4* __restrict__ qx, const float* __restrict__ sx,
                   const int4* __restrict__ w, const float* __restrict__ sw,
                   const __nv_bfloat16* __restrict__ residual, __nv_bfloat16* __restrict__ y,
                   int64_t n_rows, int k16) {
  using Acc = typename Ops::Acc;
  extern __shared__ int4 xs[];
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * R;
  const int4* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end re-read the last row (results discarded): no branches in the loop.
    wr[r] = w + min(row0 + r, n_rows - 1) * k16;
  }
  // The first group of weights is requested (into L2) before x is staged, and before the wait for
  // the kernel that wrote x (pdl_cuda.h), so that both overlap the first DRAM round trip.
  kernels::pdl::prefetch_rows<R>(w, int64_t{k16} * 16, row0, n_rows, U * 4, lane);
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  Ops::stage(qx, xs, M * k16, k16);
  __syncthreads();
  if (row0 >= n_rows) return;
  Acc acc[M][R];
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = Acc{0};
  }
  // Full groups of U vectors, then at most U - 1 single vectors. Not unrolled further: R x U
  // loads per lane already keep 64-128 KiB per SM in flight at the occupancy these registers
  // allow (2-4 blocks of 256 threads), and unrolling costs registers, hence occupancy.
  int i = lane;
#pragma unroll 1
  for (; i + (U - 1) * 32 < k16; i += U * 32) gemv_step<Ops, M, R, U>(wr, xs, i, k16, acc);
#pragma unroll 1
  for (; i < k16; i += 32) gemv_step<Ops, M, R, 1>(wr, xs, i, k16, acc);
  // Butterfly reduction leaves every sum on every lane; lane m * R + r stores output (m, r).
  Acc mine{0};
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      Acc a = acc[m][r];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) a += __shfl_xor_sync(kFull, a, off);
      if (lane == m * R + r) mine = a;
    }
  }
  static_assert(M * R <= 32, "one output per lane");
  const int m = lane / R;
  const int64_t row = row0 + lane % R;
  if (lane < M * R && row < n_rows) {
    // bf16((float(dot) * sx) * sw): explicit round-to-nearest products, in this order.
    const float v = __fmul_rn(__fmul_rn(Ops::to_float(mine), sx[m]), sw[row]);
    __nv_bfloat16 out = __float2bfloat16_rn(v);
    const int64_t o = m * n_rows + row;
    if (residual != nullptr) {
      out = __float2bfloat16_rn(__fadd_rn(__bfloat162float(residual[o]), __bfloat162float(out)));
    }
    y[o] = out;
  }
}

template <class Ops, int M, int R>
void launch_gemv(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                 const at::Tensor& sw, const at::Tensor* residual, at::Tensor& y) {
  constexpr int U = kLoadsPerLane / R;
  const int64_t N = data.size(0), K = data.size(1);
  const int k16 = static_cast<int>(K / 16);
  const auto smem = static_cast<size_t>(M) * static_cast<size_t>(K) * Ops::kXVecs;
  auto* kernel = gemv_a8_kernel<Ops, M, R, U>;
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  const int64_t blocks = (N + kWarps * R - 1) / (kWarps * R);
  kernels::pdl::launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), smem,
                       at::cuda::getCurrentCUDAStream(), reinterpret_cast<const int4*>(qx.data_ptr()),
                       sx.const_data_ptr<float>(), reinterpret_cast<const int4*>(data.data_ptr()),
                       sw.const_data_ptr<float>(), bf16_or_null(residual),
                       reinterpret_cast<__nv_bfloat16*>(y.data_ptr()), N, k16);
}

template <class Ops, int M>
void launch_gemv_rows(int R, const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                      const at::Tensor& sw, const at::Tensor* residual, at::Tensor& y) {
  switch (R) {
    case 4:
      launch_gemv<Ops, M, 4>(qx, sx, data, sw, residual, y);
      break;
    case 2:
      launch_gemv<Ops, M, 2>(qx, sx, data, sw, residual, y);
      break;
    default:
      launch_gemv<Ops, M, 1>(qx, sx, data, sw, residual, y);
      break;
  }
}

template <class Ops>
at::Tensor gemv_a8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                   const at::Tensor& sw, const at::Tensor* residual, at::ScalarType dtype,
                   const char* fn) {
  check_tensor(qx, fn, "qx", dtype);
  TORCH_CHECK(qx.dim() == 2, fn, ": qx must be [M, K], got ", qx.sizes());
  const int64_t M = qx.size(0), K = qx.size(1);
  TORCH_CHECK(M >= 1 && M <= kMaxGemvRows, fn, ": qx must have 1 to ", kMaxGemvRows,
              " rows (larger M goes through _int_mm / dequantize + matmul), got ", M);
  check_tensor(data, fn, "data", dtype, &qx);
  TORCH_CHECK(data.dim() == 2 && data.size(1) == K, fn, ": data must be [N, ", K, "], got ",
              data.sizes());
  const int64_t N = data.size(0);
  TORCH_CHECK(K % 16 == 0 && K > 0, fn,
              ": K must be a positive multiple of 16 (16-byte loads), got ", K);
  check_scale(sx, M, fn, "sx", qx);
  check_scale(sw, N, fn, "sw", qx);
  check_residual(residual, M, N, fn, qx);
  TORCH_CHECK(aligned16(qx) && aligned16(data), fn,
              ": qx and data must be 16-byte aligned (16-byte loads), got addresses ",
              qx.data_ptr(), " and ", data.data_ptr());
  if constexpr (std::is_same_v<Ops, Int8Ops>) {
    TORCH_CHECK(K <= kMaxDp4aK, fn, ": K must be at most ", kMaxDp4aK,
                " so that the int32 dot cannot overflow, got ", K);
  }
  const c10::cuda::CUDAGuard guard(qx.device());
  const int64_t smem = M * K * Ops::kXVecs;
  TORCH_CHECK(smem <= max_dynamic_smem(), fn, ": qx needs ", smem,
              " bytes of shared memory, the device allows ", max_dynamic_smem(), " (K = ", K,
              ", M = ", M, ")");
  at::Tensor y = at::empty({M, N}, qx.options().dtype(at::kBFloat16));
  if (N == 0) return y;
  // Largest R in {4, 2, 1} that still gives every SM two blocks: more rows per warp share each
  // read of x (shared-memory traffic and, for e4m3, its conversions); fewer rows per warp give
  // short matrices more warps. (H100 / H200, 132 SMs: R = 4 from N = 8448, R = 2 from 4224.)
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int R = N >= 2 * sms * kWarps * 4 ? 4 : N >= 2 * sms * kWarps * 2 ? 2 : 1;
  switch (M) {
    case 1:
      launch_gemv_rows<Ops, 1>(R, qx, sx, data, sw, residual, y);
      break;
    case 2:
      launch_gemv_rows<Ops, 2>(R, qx, sx, data, sw, residual, y);
      break;
    case 3:
      launch_gemv_rows<Ops, 3>(R, qx, sx, data, sw, residual, y);
      break;
    default:
      launch_gemv_rows<Ops, 4>(R, qx, sx, data, sw, residual, y);
      break;
  }
  return y;
}

}  // namespace

at::Tensor gemv_w8a8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                     const at::Tensor& sw, const at::Tensor* residual) {
  return gemv_a8<Int8Ops>(qx, sx, data, sw, residual, at::kChar, "gemv_w8a8");
}

at::Tensor gemv_fp8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                    const at::Tensor& sw, const at::Tensor* residual) {
  return gemv_a8<Fp8Ops>(qx, sx, data, sw, residual, at::kFloat8_e4m3fn, "gemv_fp8");
}

}  // namespace jointnas::quant::cuda
