// Weight-only quantized GEMV (w4a16 grouped asymmetric, w8a16 per-channel) and dequantization
// kernels for the layouts of pack.h; references: linear_ref / dequantize_ref in quantize.h.
//
// The GEMVs follow kernels/gemv_cuda.cu: memory-bound, so built for bytes in flight. x [M, K] is
// staged in shared memory (bf16, or fp32 at M = 1; padded so that the warp's 16-byte reads are
// bank-conflict free) while the first weight loads are in flight; each warp owns R rows and each
// lane issues R x U independent 16-byte weight loads (plus the matching scale / zero loads)
// before using any of them; 8 warps per block; warp-shuffle reduction; the optional residual
// epilogue rounds twice, as the unfused `r + linear(x)`. Every weight byte is loaded once and
// used for all M rows of x.
//
// Conversion without I2F: OR-ing an integer i < 2^23 into the mantissa of 2^23 gives the fp32
// value 2^23 + i exactly, so one LOP3 (mask | magic) and one FFMA / FADD with a per-group
// constant give (q - zero) exactly in fp32 (see nibbles_minus_zero). The products with bf16 x are
// exact in fp32 (<= 12 significant bits), summed in fp32; for w4 the group scale multiplies the
// 32-column partial sum (each 16-byte vector lies inside one group since group % 32 == 0).
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/staging_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"

namespace jointnas::quant::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// 2^23 as fp32 bits: the mantissa's unit is 1, so (kMagic | i) is the float 2^23 + i exactly.
constexpr uint32_t kMagic = 0x4B000000u;

__device__ __forceinline__ float as_float(uint32_t u) { return __uint_as_float(u); }

__device__ __forceinline__ uint32_t word(const int4& v, int c) {
  // c is a compile-time constant after unrolling: this selects a register, no local memory.
  return static_cast<uint32_t>(c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w);
}

// 8 bf16 (one 16-byte shared-memory read) -> fp32: a bf16 is the upper half of an fp32.
__device__ __forceinline__ void bf16x8_to_float(const int4& v, float (&f)[8]) {
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const uint32_t w = word(v, c);
    f[2 * c] = as_float(w << 16);
    f[2 * c + 1] = as_float(w & 0xFFFF0000u);
  }
}

// Per-group constants c[j] = -(2^(23 - 4j) + z): c[0] from bits (0xCB000000 is -2^23), the
// others by adding 2^23 - 2^(23 - 4j); all operands and results are exact, so are the FADDs.
__device__ __forceinline__ void zero_consts(uint32_t z, float (&c)[4]) {
  c[0] = as_float(0xCB000000u | z);
  c[1] = c[0] + 7864320.0f;  // 2^23 - 2^19
  c[2] = c[0] + 8355840.0f;  // 2^23 - 2^15
  c[3] = c[0] + 8386560.0f;  // 2^23 - 2^11
}

// (a & kMask) | kMagic in one LOP3. Written as C++, the two constants make the compiler emit two
// LOP3s (an instruction takes one immediate); in PTX, ptxas keeps one in a register.
template <uint32_t kMask>
__device__ __forceinline__ uint32_t mask_or_magic(uint32_t a) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(kMask), "n"(kMagic));
  return d;
}

// The 8 nibbles of w (column j in bits 4j..4j+3) -> (q_j - z) exactly in fp32. Nibble j < 4 is
// masked in place: (w & (0xF << 4j)) | magic = 2^23 + q 2^4j; times 2^-4j (exact) plus c[j] is
// q - z, one rounding of an exact value, i.e. none. Nibbles 4..7 reuse the masks on w >> 16.
// Cost: 1 LOP3 + 1 FFMA per value, 1 shift per 8.
__device__ __forceinline__ void nibbles_minus_zero(uint32_t w, const float (&c)[4], float (&v)[8]) {
  const uint32_t h = w >> 16;
  v[0] = as_float(mask_or_magic<0x000Fu>(w)) + c[0];
  v[1] = fmaf(as_float(mask_or_magic<0x00F0u>(w)), 0x1p-4f, c[1]);
  v[2] = fmaf(as_float(mask_or_magic<0x0F00u>(w)), 0x1p-8f, c[2]);
  v[3] = fmaf(as_float(mask_or_magic<0xF000u>(w)), 0x1p-12f, c[3]);
  v[4] = as_float(mask_or_magic<0x000Fu>(h)) + c[0];
  v[5] = fmaf(as_float(mask_or_magic<0x00F0u>(h)), 0x1p-4f, c[1]);
  v[6] = fmaf(as_float(mask_or_magic<0x0F00u>(h)), 0x1p-8f, c[2]);
  v[7] = fmaf(as_float(mask_or_magic<0xF000u>(h)), 0x1p-12f, c[3]);
}

// 4 int8 (byte k = column k) -> exact fp32. XOR 0x80 maps q to q + 128 in [0, 255]; PRMT places
// that byte under the magic exponent (bytes [u, 0, 0, 0x4B]); subtracting 2^23 + 128 gives q.
__device__ __forceinline__ void int8x4_to_float(uint32_t w, float* q) {
  const uint32_t u = w ^ 0x80808080u;
#pragma unroll
  for (int k = 0; k < 4; ++k) q[k] = as_float(__byte_perm(u, kMagic, 0x7440u + k)) - 8388736.0f;
}

// Unsigned division by a runtime constant as a multiply-high (PyTorch's IntDivider): exact for
// n < 2^31. The dequant kernels need the row (and group) of a flat index; a hardware-free
// division would cost ~20 instructions per 8 values.
struct FastDiv {
  uint32_t m = 1;
  uint32_t s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t d) {
    while ((uint64_t{1} << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

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
// w4a16 GEMV. A 16-byte vector holds 32 nibbles = 32 columns of one group. Per lane and chunk:
// R x U vectors + R x U (scale, zero) pairs in flight; then per 8-column word: x from shared
// memory for each row of x (shared by the R weight rows), 2 instructions per nibble for (q - z),
// M FFMAs. kF32X stages x as fp32 (M = 1, K small enough): no bf16 -> fp32 conversion per use.
template <int M, int R, int U, bool kF32X>
__global__ void __launch_bounds__(kThreads, kMinBlocks<M>)
    gemv_w4_kernel(const int4* __restrict__ data,               // [N, K / 32] vectors of 32 nibbles
                   const uint16_t* __restrict__ scale,          // [N, G] bf16 bits
                   const uint8_t* __restrict__ zero,            // [N, G]
                   const int4* __restrict__ x,                  // [M, K / 8] vectors of 8 bf16
                   __nv_bfloat16* __restrict__ y,               // [M, N]
                   const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                   int n_rows, int k32, int groups, FastDiv vecs_per_group, int x_stride) {
  constexpr int kVecBytes = 32 * (kF32X ? 4 : 2);  // x bytes of one weight vector
  extern __shared__ int4 xs_[];                    // M rows of x_stride bytes (stage_x)
  char* xs = reinterpret_cast<char*>(xs_);
  const int k8 = k32 * 4;
  const int lane = threadIdx.x & 31;
  kernels::pdl::prefetch_rows<R>(data, int64_t{k32} * 16,
                                 (int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5)) * R, n_rows,
                                 U * 4, lane);
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  // x is staged once per block; each warp then loops over row groups (a persistent grid of
  // about one wave), so that the staging and the block start are paid once per SM slot rather
  // than once per 2 KB of weights.
  stage_x<M, kF32X>(xs, x, k8, x_stride);
  __syncthreads();
  for (int rg = blockIdx.x * kWarps + (threadIdx.x >> 5); rg * R < n_rows; rg += gridDim.x * kWarps) {
  const int row0 = rg * R;
  const int4* wr[R];
  // row * G: scale / zero index of the row's first group (N * G < 2^31). Unsigned 32-bit
  // indices make each scale / zero address one IMAD.WIDE.U32 off the base pointer.
  uint32_t sz_row[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end re-read the last row (results discarded): no branches in the loop.
    const int row = min(row0 + r, n_rows - 1);
    wr[r] = data + static_cast<int64_t>(row) * k32;
    sz_row[r] = static_cast<uint32_t>(row * groups);
  }
  // Two partial sums per row at M = 1 so that the FFMA chains are not latency-bound.
  constexpr int P = M == 1 ? 2 : 1;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  const char* x_lane = xs + pad128(lane * kVecBytes);

  // One chunk: R x U vectors per lane from column vector `base` on. kFull (every vector inside
  // the row, the common case) drops the per-vector bounds checks.
  auto chunk = [&](int base, auto full) {
    constexpr bool kFull = decltype(full)::value;
    // base * kVecBytes is a multiple of 1024: its padded offset is exactly 9/8 of it.
    const char* x_chunk = x_lane + base * kVecBytes / 8 * 9;
    int4 wv[R][U];
    uint32_t sv[R][U], zv[R][U];
    const uint32_t v0 = static_cast<uint32_t>(base + lane);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const uint32_t v = v0 + 32 * u;
      const uint32_t g = vecs_per_group.div(v);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        // Past the row's end nothing is loaded (and nothing is read: see below).
        if (kFull || v < static_cast<uint32_t>(k32)) {
          wv[r][u] = __ldg(wr[r] + v0 + 32 * u);
          sv[r][u] = __ldg(scale + (sz_row[r] + g));
          zv[r][u] = __ldg(zero + (sz_row[r] + g));
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (!kFull && base + lane + 32 * u >= k32) continue;
      float cz[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) zero_consts(zv[r][u], cz[r]);
      float p[R][M][P];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
          for (int i = 0; i < P; ++i) p[r][m][i] = 0.f;
#pragma unroll
      for (int c = 0; c < 4; ++c) {  // 8 columns per 32-bit word
        float xf[M][8];
#pragma unroll
        for (int m = 0; m < M; ++m) {
          load_x8<kF32X>(x_chunk + m * x_stride + 32 * u * kVecBytes / 8 * 9, c, xf[m]);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float q[8];
          nibbles_minus_zero(word(wv[r][u], c), cz[r], q);
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < 8; ++j) p[r][m][j % P] = fmaf(q[j], xf[m][j], p[r][m][j % P]);
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float s = as_float(sv[r][u] << 16);  // bf16 -> fp32
#pragma unroll
        for (int m = 0; m < M; ++m) {
          float pm = p[r][m][0];
#pragma unroll
          for (int i = 1; i < P; ++i) pm += p[r][m][i];
          acc[r][m] = fmaf(s, pm, acc[r][m]);
        }
      }
    }
  };
  for (int base = 0; base < k32; base += 32 * U) {
    if (base + 32 * U <= k32) {
      chunk(base, std::true_type{});
    } else {
      chunk(base, std::false_type{});
    }
  }
  float one[R];
#pragma unroll
  for (int r = 0; r < R; ++r) one[r] = 1.f;  // the group scales are already applied
  reduce_store<M, R>(acc, one, lane, row0, n_rows, y, residual);
  }
}

// ---------------------------------------------------------------------------------------------
// w4a16 GEMV at M = 1 with the weights streamed through shared memory by cp.async (variant 2xx).
// The register-staged kernel above issues a warp's loads, waits for all of them, computes, and
// only then loads again: with 128 registers per thread (2 blocks, 16 warps per SM) too few bytes
// are in flight during the compute phases, and it reads 1.3-1.4 TB/s where the bf16 GEMV reads
// 3 TB/s (docs/benchmarks.md). Here each lane copies its own 16-byte vectors into a private ring of
// S stages in shared memory (cp.async.cg, no registers held) and computes on stage t while stages
// t+1 .. t+S-1 are in flight, so each warp always has (S - 1) x 2 KB on the way. A warp's work is
// a list of items (row, 32 x U vectors of that row); rows are dealt round-robin over all warps of
// the persistent grid. Each lane reads back only what it copied itself, so cp.async.wait_group
// alone orders the copy and the read (no barrier). The scale and zero of each vector are loaded
// into registers when its copy is issued. Per row, the arithmetic and its order are those of
// gemv_w4_kernel (2 partial sums per vector, the group scale on their sum, vectors in order, the
// same warp reduction): the result is bitwise the same (tests/quant/wo_kernels_cuda_test.cpp).
// Measured on an H200 it is no faster than the register-staged kernel (docs/benchmarks.md, issue
// 3): with the bytes in flight no longer short, about 3.5 instructions per weight (R = 1: x is
// read per row) bound it instead. Kept as variants 203 / 204 for that comparison.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const auto s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

constexpr int kPipeU = 4;  // vectors per lane per item: 32 x 4 x 16 B = 2 KB of nibbles per warp

// Shared memory of the pipelined kernel: x (one padded row) and the rings of the 8 warps.
inline int64_t pipe_smem_bytes(int64_t K, bool f32x, int stages) {
  return x_row_bytes(K, f32x ? 4 : 2) + int64_t{kWarps} * stages * kPipeU * 32 * 16;
}

template <bool kF32X, int S>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_w4_pipe_kernel(const int4* __restrict__ data, const uint16_t* __restrict__ scale,
                        const uint8_t* __restrict__ zero, const int4* __restrict__ x,
                        __nv_bfloat16* __restrict__ y, const __nv_bfloat16* __restrict__ residual,
                        int n_rows, int k32, int groups, FastDiv vecs_per_group, int x_stride) {
  constexpr int U = kPipeU;
  constexpr int kVecBytes = 32 * (kF32X ? 4 : 2);
  extern __shared__ int4 xs_[];
  char* xs = reinterpret_cast<char*>(xs_);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // This lane's slot of vector u in stage s: ring[(s * U + u) * 32] (consecutive lanes, 16 B apart).
  int4* ring = reinterpret_cast<int4*>(xs + x_stride) + warp * S * U * 32 + lane;
  const int chunks = (k32 + 32 * U - 1) / (32 * U);
  const int stride = static_cast<int>(gridDim.x) * kWarps;
  const int first = static_cast<int>(blockIdx.x) * kWarps + warp;
  const int items = first < n_rows ? ((n_rows - 1 - first) / stride + 1) * chunks : 0;
  uint32_t sv[S][U], zv[S][U];
  int irow = first, ibase = 0, issued = 0;  // the next item to copy
  // s is a constant once the loops below are unrolled: sv / zv stay in registers.
  auto issue = [&](int s) {
    if (issued < items) {
      const int4* wr = data + static_cast<int64_t>(irow) * k32;
      const uint32_t sz = static_cast<uint32_t>(irow * groups);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int v = ibase + lane + 32 * u;
        if (v < k32) {
          cp_async16(ring + (s * U + u) * 32, wr + v);
          const uint32_t g = vecs_per_group.div(static_cast<uint32_t>(v));
          sv[s][u] = __ldg(scale + (sz + g));
          zv[s][u] = __ldg(zero + (sz + g));
        }
      }
      ibase += 32 * U;
      if (ibase >= k32) {
        ibase = 0;
        irow += stride;
      }
      ++issued;
    }
    cp_async_commit();  // empty groups too: wait_group counts stay aligned with items
  };
  // The weights, scales and zeros are never written by a kernel: their first stages are copied
  // before the wait for the previous kernel (programmatic launch), under its tail.
#pragma unroll
  for (int s = 0; s < S - 1; ++s) issue(s);
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  stage_x<1, kF32X>(xs, x, k32 * 4, x_stride);
  __syncthreads();
  const char* x_lane = xs + pad128(lane * kVecBytes);
  float acc[1][1] = {{0.f}};
  const float one[1] = {1.f};  // the group scales are already applied
  int row = first, base = 0;   // the item being computed
  auto consume = [&](int s) {
    cp_async_wait<S - 1>();  // this item's group is complete (newer ones may still fly)
    // base * kVecBytes is a multiple of 1024: its padded offset is exactly 9/8 of it.
    const char* x_chunk = x_lane + base * kVecBytes / 8 * 9;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (base + lane + 32 * u >= k32) continue;
      const int4 wv = ring[(s * U + u) * 32];
      float cz[4];
      zero_consts(zv[s][u], cz);
      float p[2] = {0.f, 0.f};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float xf[8];
        load_x8<kF32X>(x_chunk + 32 * u * kVecBytes / 8 * 9, c, xf);
        float q[8];
        nibbles_minus_zero(word(wv, c), cz, q);
#pragma unroll
        for (int j = 0; j < 8; ++j) p[j % 2] = fmaf(q[j], xf[j], p[j % 2]);
      }
      acc[0][0] = fmaf(as_float(sv[s][u] << 16), p[0] + p[1], acc[0][0]);
    }
    base += 32 * U;
    if (base >= k32) {  // the row is complete
      reduce_store<1, 1>(acc, one, lane, row, n_rows, y, residual);
      acc[0][0] = 0.f;
      base = 0;
      row += stride;
    }
  };
  for (int t0 = 0; t0 < items; t0 += S) {
#pragma unroll
    for (int i = 0; i < S; ++i) {
      if (t0 + i >= items) break;
      issue((i + S - 1) % S);  // refill the stage computed last
      consume(i);
    }
  }
  cp_async_wait<0>();
}

// ---------------------------------------------------------------------------------------------
// w8a16 GEMV. A 16-byte vector holds 16 int8 columns; one fp32 scale per row multiplies the
// finished sum, so the loop only converts (XOR + PRMT + FADD) and accumulates.
template <int M, int R, int U>
__global__ void __launch_bounds__(kThreads, kMinBlocks<M>)
    gemv_w8_kernel(const int4* __restrict__ data,               // [N, K / 16] vectors of 16 int8
                   const float* __restrict__ scale,             // [N]
                   const int4* __restrict__ x,                  // [M, K / 8] vectors of 8 bf16
                   __nv_bfloat16* __restrict__ y,               // [M, N]
                   const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                   int64_t n_rows, int k16, int x_stride) {
  constexpr int kVecBytes = 32;  // bf16 x bytes of one weight vector
  extern __shared__ int4 xs_[];  // M rows of x_stride bytes (stage_x)
  char* xs = reinterpret_cast<char*>(xs_);
  const int k8 = k16 * 2;
  const int lane = threadIdx.x & 31;
  kernels::pdl::prefetch_rows<R>(data, int64_t{k16} * 16,
                                 (int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5)) * R, n_rows,
                                 U * 4, lane);
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  stage_x<M, false>(xs, x, k8, x_stride);  // once per block: the grid is persistent
  __syncthreads();
  for (int64_t rg = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); rg * R < n_rows;
       rg += static_cast<int64_t>(gridDim.x) * kWarps) {
  const int64_t row0 = rg * R;
  const int4* wr[R];
  float sc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = min(row0 + r, n_rows - 1);  // past the end: re-read, discarded
    wr[r] = data + row * k16;
    sc[r] = __ldg(scale + row);
  }
  constexpr int P = M == 1 ? 2 : 1;
  float acc[R][M][P];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int i = 0; i < P; ++i) acc[r][m][i] = 0.f;
  const char* x_lane = xs + pad128(lane * kVecBytes);

  for (int base = 0; base < k16; base += 32 * U) {  // uniform trip count (see gemv_w4_kernel)
    const char* x_chunk = x_lane + base * kVecBytes / 8 * 9;
    int4 wv[R][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (v < k16) wv[r][u] = __ldg(wr[r] + v);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
      if (v >= k16) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // 8 columns per half vector
        float xf[M][8];
#pragma unroll
        for (int m = 0; m < M; ++m) {
          load_x8<false>(x_chunk + m * x_stride + 32 * u * kVecBytes / 8 * 9, h, xf[m]);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float q[8];
          int8x4_to_float(word(wv[r][u], 2 * h), q);
          int8x4_to_float(word(wv[r][u], 2 * h + 1), q + 4);
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < 8; ++j) {
              acc[r][m][j % P] = fmaf(q[j], xf[m][j], acc[r][m][j % P]);
            }
        }
      }
    }
  }
  float out[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float a = acc[r][m][0];
#pragma unroll
      for (int i = 1; i < P; ++i) a += acc[r][m][i];
      out[r][m] = a;
    }
  // The sum is reduced first, then scaled: sum_k q x s == s sum_k q x up to fp32 rounding.
  reduce_store<M, R>(out, sc, lane, row0, n_rows, y, residual);
  }
}

// ---------------------------------------------------------------------------------------------
// w4a16 GEMV on the tensor cores (variant >= 100, M = 1..4), Marlin-style: one
// mma.sync.m16n8k16 (bf16 in, fp32 accumulate) multiplies a 16-row x 16-k tile of the weight
// (A, exact (q - z) in bf16) by a 16-k x 8 tile of x^T (B: column m = row m of x; columns >= M
// are don't-care and never stored), C [16 x 8] fp32.
//
// Fragments (lane = 4 gid + tid): A a0 = (row gid, k 2tid..2tid+1), a1 = (row gid+8, same k),
// a2 = (row gid, k 2tid+8..+9), a3 = (row gid+8, same k); B b0 = (k 2tid..2tid+1, col gid),
// b1 = (k 2tid+8..+9, col gid); C c0, c1 = (row gid, cols 2tid, 2tid+1), c2, c3 = (row gid+8,
// same cols). A lane's A and B elements carry the same 4 logical k (2tid, 2tid+1, 2tid+8,
// 2tid+9) and the sum over k is order-free, so every lane may map its 4 logical k to any 4
// physical columns of its own, as long as the 4 lanes of one gid use disjoint columns, rows gid and
// gid+8 use the same columns, and B uses the same ones: lane tid's k are columns of a 32-bit
// word (8 nibbles) that lane tid loaded from rows gid and gid+8.
//
// Per word w (columns 8c..8c+7, nibble j = column 8c+j): LOP3 (w >> 4s) & 0x000F000F | 0x43004300
// gives the bf16 pair (128 + q_s, 128 + q_{s+4}) exactly (128 + q < 256 has step 1 in bf16); one
// bf16x2 FMA with (1, 1) and -(128 + z) makes it (q - z) exactly. Shifts 0, 4 feed a0 / a2 (a1 /
// a3 from the row gid+8 word) of one k-step, shifts 8, 12 the next: a word feeds 2 k-steps, pairs
// (0,4), (1,5) then (2,6), (3,7). x is staged in shared memory in that order: per 8 columns the
// bf16x2 pairs (c0,c4), (c1,c5), (c2,c6), (c3,c7) (16 bytes: b0, b1 of both k-steps, one LDS.128).
//
// A chunk is 4 x Wd words of a row: lane tid loads Wd words (16, 8 or 4 bytes) at word tid * Wd
// of it, from rows gid and gid + 8; one chunk = 2 Wd k-steps of the warp. The 4 lanes of a gid
// share an mma, so a chunk (32 Wd columns) must lie in one group: Wd = 4 needs g % 128 == 0, 2
// needs g % 64, 1 g % 32. Per chunk C starts at 0 and the group's fp32 scale applies once per row:
// acc = fma(s, C, acc). A warp owns 16 rows (a tile) and each lane keeps 2 x U chunk loads (plus
// their scale / zero) in flight; `ks` warps of a block split the chunks of one tile
// (interleaved by U chunks) and reduce through shared memory, so short rows (K = 4096: 2 KB) still
// give every warp a full U chunks of loads; the grid is persistent over tiles.
constexpr int kTcRedBytes = 2 * kWarps * 32 * 16;  // double-buffered float4 per lane

// Shared-memory x row of the tensor-core GEMV: 16 bytes per 8 columns, 16 bytes of padding after
// every 64 (the 4 lanes of a gid read 64 bytes apart at Wd = 4: without it, 2-way conflicts),
// rows 64 bytes past a multiple of 128 apart (gid pairs in one 8-lane phase read rows m, m + 1).
inline int64_t tc_x_row_bytes(int64_t K) {
  const int64_t b = (K / 8 + K / 32) * 16;
  return (b + 127) / 128 * 128 + 64;
}

// (w >> kShift) & 0x000F000F | 0x43004300: the bf16 pair (128 + nibble kShift/4, 128 + nibble
// kShift/4 + 4), low half first.
template <int kShift>
__device__ __forceinline__ uint32_t nibble_pair_bf16(uint32_t w) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w >> kShift), "n"(0x000F000F), "n"(0x43004300));
  return d;
}

// a * (1, 1) + nz with nz = (-(128 + z), -(128 + z)): (q - z) in both halves, exact.
__device__ __forceinline__ uint32_t bf16x2_add_one(uint32_t a, uint32_t nz) {
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(0x3F803F80u), "r"(nz));
  return d;
}

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                               uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Wd words (4 Wd bytes) of packed weights as one global load.
template <int Wd>
__device__ __forceinline__ void load_words(const uint32_t* __restrict__ p, uint32_t (&w)[Wd]) {
  if constexpr (Wd == 4) {
    const int4 v = __ldg(reinterpret_cast<const int4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (Wd == 2) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = __ldg(p);
  }
}

template <int Wd, int U>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_w4_tc_kernel(const uint32_t* __restrict__ data,           // [N, K / 8] words of 8 nibbles
                      const uint16_t* __restrict__ scale,          // [N, G] bf16 bits
                      const uint8_t* __restrict__ zero,            // [N, G]
                      const int4* __restrict__ x,                  // [M, K / 8] vectors of 8 bf16
                      __nv_bfloat16* __restrict__ y,               // [M, N]
                      const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                      int n_rows, int M, int k8, int groups, FastDiv chunks_per_group, int ks,
                      int x_stride) {
  constexpr int kChunkWords = 4 * Wd;  // words of one row per chunk (4 lanes x Wd)
  extern __shared__ int4 smem_[];
  char* smem = reinterpret_cast<char*>(smem_);
  float4* red = reinterpret_cast<float4*>(smem);  // [2][kWarps][32] partial sums (ks > 1)
  char* xs = smem + kTcRedBytes;                  // M rows of x_stride bytes, permuted x

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = lane >> 2, tid = lane & 3;
  const int slot = warp / ks, kpart = warp - slot * ks;  // tile slot of the block, K part
  const int tiles_per_block = kWarps / ks;
  const int n_tiles = (n_rows + 15) / 16;
  const int n_chunks = k8 / kChunkWords;
  // Launched programmatically (pdl_cuda.h): the weights do not depend on the previous kernel, so
  // each lane's first U chunks of its two rows go to L2 before the wait for it.
  if (const int tile0 = static_cast<int>(blockIdx.x) * tiles_per_block + slot; tile0 < n_tiles) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = min(tile0 * 16 + gid + 8 * h, n_rows - 1);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = kpart * U + u;
        if (c < n_chunks) kernels::pdl::prefetch_l2(data + static_cast<int64_t>(row) * k8 + tid * Wd + c * kChunkWords);
      }
    }
  }
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();

  // Stage x: per 8 columns c0..c7 (words (c0,c1), (c2,c3), (c4,c5), (c6,c7)) the bf16 pairs
  // (c0,c4), (c1,c5), (c2,c6), (c3,c7), at padded offset 16 (w + w / 4).
  kernels::load_staged<kThreads>(x, M * k8, [&](int i, const int4& v) {
    const int m = i / k8, w = i - m * k8;
    const uint32_t w0 = v.x, w1 = v.y, w2 = v.z, w3 = v.w;
    *reinterpret_cast<int4*>(xs + m * x_stride + 16 * (w + (w >> 2))) =
        make_int4(__byte_perm(w0, w2, 0x5410), __byte_perm(w0, w2, 0x7632),
                  __byte_perm(w1, w3, 0x5410), __byte_perm(w1, w3, 0x7632));
  });
  __syncthreads();
  // B column gid = row gid of x; columns >= M read row M - 1 (finite, never stored).
  // Word i of lane tid in chunk c: padded offset 16 (c 5 Wd + tid Wd + i + (tid Wd) / 4).
  const char* x_lane = xs + min(gid, M - 1) * x_stride + 16 * (tid * Wd + ((tid * Wd) >> 2));

  int iter = 0;
  // Block-uniform trip count (the reduction's barrier); slots past the last tile idle.
  for (int bt = blockIdx.x; bt * tiles_per_block < n_tiles; bt += gridDim.x, ++iter) {
    const int tile = bt * tiles_per_block + slot;
    const bool valid = tile < n_tiles;
    const int n0 = tile * 16;
    // Rows past the end re-read the last row (results not stored).
    const int rows[2] = {min(n0 + gid, n_rows - 1), min(n0 + gid + 8, n_rows - 1)};
    const uint32_t* wp[2];
    uint32_t sz_row[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      wp[h] = data + static_cast<int64_t>(rows[h]) * k8 + tid * Wd;
      sz_row[h] = static_cast<uint32_t>(rows[h] * groups);
    }
    const int my_chunks = valid ? n_chunks : 0;  // warp-uniform, as every guard below
    float acc[4] = {0.f, 0.f, 0.f, 0.f};

    auto chunk = [&](int base, auto full) {
      constexpr bool kFull = decltype(full)::value;
      uint32_t wv[2][U][Wd];
      uint32_t sv[2][U], zv[2][U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = base + u;
        if (kFull || c < my_chunks) {
          const uint32_t grp = chunks_per_group.div(static_cast<uint32_t>(c));
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            load_words<Wd>(wp[h] + c * kChunkWords, wv[h][u]);
            sv[h][u] = __ldg(scale + (sz_row[h] + grp));
            zv[h][u] = __ldg(zero + (sz_row[h] + grp));
          }
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = base + u;
        if (!kFull && c >= my_chunks) continue;
        const char* xc = x_lane + c * (80 * Wd);
        uint32_t nz[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) nz[h] = 0xC300C300u | (zv[h][u] * 0x00010001u);
        float cf[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < Wd; ++i) {
          const int4 b = *reinterpret_cast<const int4*>(xc + 16 * i);
          const uint32_t lo = wv[0][u][i], hi = wv[1][u][i];  // rows gid, gid + 8
          mma_bf16_16816(cf, bf16x2_add_one(nibble_pair_bf16<0>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<0>(hi), nz[1]),
                         bf16x2_add_one(nibble_pair_bf16<4>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<4>(hi), nz[1]), b.x, b.y);
          mma_bf16_16816(cf, bf16x2_add_one(nibble_pair_bf16<8>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<8>(hi), nz[1]),
                         bf16x2_add_one(nibble_pair_bf16<12>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<12>(hi), nz[1]), b.z, b.w);
        }
        const float s0 = as_float(sv[0][u] << 16), s1 = as_float(sv[1][u] << 16);
        acc[0] = fmaf(s0, cf[0], acc[0]);
        acc[1] = fmaf(s0, cf[1], acc[1]);
        acc[2] = fmaf(s1, cf[2], acc[2]);
        acc[3] = fmaf(s1, cf[3], acc[3]);
      }
    };
#pragma unroll 1
    for (int base = kpart * U; base < my_chunks; base += ks * U) {
      if (base + U <= my_chunks) {
        chunk(base, std::true_type{});
      } else {
        chunk(base, std::false_type{});
      }
    }

    if (ks > 1) {
      float4* buf = red + (iter & 1) * (kWarps * 32);
      buf[warp * 32 + lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      // Double buffer: a warp writes this buffer again two iterations on, i.e. after the next
      // barrier, which every reader of this iteration passes only after reading.
      __syncthreads();
      if (kpart == 0) {
        acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
#pragma unroll 1
        for (int j = 0; j < ks; ++j) {
          const float4 p = buf[(slot * ks + j) * 32 + lane];
          acc[0] += p.x, acc[1] += p.y, acc[2] += p.z, acc[3] += p.w;
        }
      }
    }
    if (kpart == 0 && valid) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = n0 + gid + 8 * h;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int m = 2 * tid + j;
          if (row < n_rows && m < M) {
            const int64_t i = static_cast<int64_t>(m) * n_rows + row;
            const __nv_bfloat16 out = __float2bfloat16_rn(acc[2 * h + j]);
            y[i] = residual == nullptr
                       ? out
                       : __float2bfloat16_rn(__bfloat162float(residual[i]) + __bfloat162float(out));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dequantization: one thread per 8 output values per step (a 16-byte bf16 store, consecutive
// lanes contiguous), kDqSteps independent steps per thread.
constexpr int kDqSteps = 4;

__device__ __forceinline__ void store8(__nv_bfloat16* out, const float (&v)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 b = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    w[i] = *reinterpret_cast<const uint32_t*>(&b);
  }
  *reinterpret_cast<int4*>(out) = make_int4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ void store8(__half* out, const float (&v)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __half2 b = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
    w[i] = *reinterpret_cast<const uint32_t*>(&b);
  }
  *reinterpret_cast<int4*>(out) = make_int4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ void store8(float* out, const float (&v)[8]) {
  reinterpret_cast<float4*>(out)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(out)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// Unit i = word i of data (8 nibbles, columns 8 (i mod K/8) ..): row = i / (K/8), group =
// (i mod K/8) / (g/8). value = (q - z) * s in fp32 (exact), rounded once to T.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dequant_w4_kernel(const uint32_t* __restrict__ data, const uint16_t* __restrict__ scale,
                      const uint8_t* __restrict__ zero, T* __restrict__ out, uint32_t units,
                      uint32_t words_per_row, FastDiv row_of, FastDiv group_of, uint32_t groups) {
  const uint32_t first = blockIdx.x * (kThreads * kDqSteps) + threadIdx.x;
  uint32_t w[kDqSteps], s[kDqSteps], z[kDqSteps];
#pragma unroll
  for (int j = 0; j < kDqSteps; ++j) {
    const uint32_t i = first + j * kThreads;
    w[j] = s[j] = z[j] = 0;
    if (i < units) {
      const uint32_t row = row_of.div(i);
      const uint32_t g = row * groups + group_of.div(i - row * words_per_row);
      w[j] = __ldg(data + i);
      s[j] = __ldg(scale + g);
      z[j] = __ldg(zero + g);
    }
  }
#pragma unroll
  for (int j = 0; j < kDqSteps; ++j) {
    const uint32_t i = first + j * kThreads;
    if (i >= units) continue;
    float c[4], v[8];
    zero_consts(z[j], c);
    nibbles_minus_zero(w[j], c, v);
    const float sf = as_float(s[j] << 16);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] *= sf;
    store8(out + static_cast<int64_t>(i) * 8, v);
  }
}

// Unit i = 8 int8 of data (columns 8 (i mod K/8) ..); value = float(q) * s[row], rounded once.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dequant_w8_kernel(const uint2* __restrict__ data, const float* __restrict__ scale,
                      T* __restrict__ out, uint32_t units, FastDiv row_of) {
  const uint32_t first = blockIdx.x * (kThreads * kDqSteps) + threadIdx.x;
  uint2 w[kDqSteps];
  float s[kDqSteps];
#pragma unroll
  for (int j = 0; j < kDqSteps; ++j) {
    const uint32_t i = first + j * kThreads;
    w[j] = make_uint2(0, 0);
    s[j] = 0.f;
    if (i < units) {
      w[j] = __ldg(data + i);
      s[j] = __ldg(scale + row_of.div(i));
    }
  }
#pragma unroll
  for (int j = 0; j < kDqSteps; ++j) {
    const uint32_t i = first + j * kThreads;
    if (i >= units) continue;
    float v[8];
    int8x4_to_float(w[j].x, v);
    int8x4_to_float(w[j].y, v + 4);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] *= s[j];
    store8(out + static_cast<int64_t>(i) * 8, v);
  }
}

// Any shape (K % 8 != 0, e.g. stories260K's K = 172 with one group per row, or a misaligned
// data pointer): one thread per output value, 64-bit indices. Small models only; same numbers.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dequant_w4_any_kernel(const uint8_t* __restrict__ data, const uint16_t* __restrict__ scale,
                          const uint8_t* __restrict__ zero, T* __restrict__ out, int64_t n_rows,
                          int64_t K, int64_t group) {
  const int64_t total = n_rows * K;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = e / K, col = e - row * K;
    const uint32_t byte = data[row * (K / 2) + col / 2];
    const int64_t g = row * (K / group) + col / group;
    const float q = static_cast<float>((col & 1) != 0 ? byte >> 4 : byte & 0xFu);
    out[e] = static_cast<T>((q - static_cast<float>(zero[g])) *
                            as_float(static_cast<uint32_t>(scale[g]) << 16));
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    dequant_w8_any_kernel(const int8_t* __restrict__ data, const float* __restrict__ scale,
                          T* __restrict__ out, int64_t n_rows, int64_t K) {
  const int64_t total = n_rows * K;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * kThreads) {
    out[e] = static_cast<T>(static_cast<float>(data[e]) * scale[e / K]);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: argument checks (expected vs got), launch configuration.

void check_tensor(const char* fn, const char* name, const at::Tensor& t, at::ScalarType dtype,
                  at::IntArrayRef shape, c10::Device device) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": expected ", name, " of dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == device, fn, ": expected ", name, " on ", device, ", got ", t.device());
  TORCH_CHECK(t.sizes().equals(shape), fn, ": expected ", name, " of shape ", shape, ", got ",
              t.sizes());
  TORCH_CHECK(t.is_contiguous(), fn, ": expected ", name, " to be contiguous, got strides ",
              t.strides());
}

void check_aligned(const char* fn, const char* name, const at::Tensor& t, int bytes) {
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % bytes == 0, fn, ": expected ", name,
              " aligned to ", bytes, " bytes (vector loads), got address ", t.data_ptr());
}

void check_cuda_matrix(const char* fn, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.dim() == 2, fn, ": expected ", name,
              " to be a 2-d CUDA tensor, got ",
              t.defined() ? t.sizes().vec() : std::vector<int64_t>{}, " on ",
              t.defined() ? t.device().str() : std::string("(undefined)"));
}

// x [M, K] bf16 with 1 <= M <= kMaxGemvRows; returns M.
int64_t check_gemv_x(const char* fn, const at::Tensor& x, int64_t K, c10::Device device) {
  check_cuda_matrix(fn, "x", x);
  const int64_t M = x.size(0);
  TORCH_CHECK(M >= 1 && M <= kMaxGemvRows, fn, ": expected 1 <= M <= ", kMaxGemvRows,
              " rows of x, got M = ", M);
  check_tensor(fn, "x", x, at::kBFloat16, {M, K}, device);
  check_aligned(fn, "x", x, 16);
  return M;
}

const at::Tensor* check_residual(const char* fn, const at::Tensor* residual, int64_t M, int64_t N,
                                 c10::Device device) {
  if (residual == nullptr) return nullptr;
  check_tensor(fn, "residual", *residual, at::kBFloat16, {M, N}, device);
  return residual;
}

size_t smem_limit() { return at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin; }

// x is staged whole in shared memory: M padded rows of K * (2 or 4) bytes; above 48 KiB the
// kernel must opt in.
size_t gemv_smem(const char* fn, const void* kernel, int64_t M, int64_t K, int64_t x_bytes) {
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
unsigned persistent_blocks(const void* kernel, size_t smem, int64_t n_rows, int rows_per_warp) {
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

const __nv_bfloat16* bf16_ptr(const at::Tensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const __nv_bfloat16*>(t->data_ptr());
}

// The arguments of both int4 GEMV kernels (gemv_w4_kernel, gemv_w4_pipe_kernel); x staged with
// x_bytes per value.
template <typename Kernel>
void launch_w4_kernel(Kernel kernel, unsigned blocks, size_t smem, const at::Tensor& x,
                      const at::Tensor& data, const at::Tensor& scale, const at::Tensor& zero,
                      int64_t group, const at::Tensor* residual, at::Tensor& y, int64_t x_bytes) {
  const int64_t N = data.size(0), K = x.size(1);
  kernels::pdl::launch(
      kernel, dim3(blocks), dim3(kThreads), smem, at::cuda::getCurrentCUDAStream(),
      reinterpret_cast<const int4*>(data.data_ptr()),
      reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.const_data_ptr<uint8_t>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), static_cast<int>(N), static_cast<int>(K / 32),
      static_cast<int>(K / group), FastDiv(static_cast<uint32_t>(group / 32)),
      static_cast<int>(x_row_bytes(K, x_bytes)));
}

template <int M, int R, int U, bool kF32X = false>
void launch_w4(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
               const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  auto kernel = gemv_w4_kernel<M, R, U, kF32X>;
  const size_t smem =
      gemv_smem("gemv_w4a16", reinterpret_cast<const void*>(kernel), M, K, kF32X ? 4 : 2);
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, R);
  launch_w4_kernel(kernel, blocks, smem, x, data, scale, zero, group, residual, y, kF32X ? 4 : 2);
}

// x as fp32 in shared memory up to K = 8192 (36 KB), as bf16 above: two blocks of 8 warps per
// SM keep their rings (8 x S x 2 KB) beside it.
inline bool pipe_f32x(int64_t K) { return K <= 8192; }

template <int S>
void launch_w4_pipe(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                    const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  const bool f32x = pipe_f32x(K);
  auto kernel = f32x ? gemv_w4_pipe_kernel<true, S> : gemv_w4_pipe_kernel<false, S>;
  const size_t smem = static_cast<size_t>(pipe_smem_bytes(K, f32x, S));
  TORCH_CHECK(smem <= smem_limit(), "gemv_w4a16: the pipelined kernel needs ", smem,
              " bytes of shared memory at K = ", K, ", the device allows ", smem_limit());
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, 1);
  launch_w4_kernel(kernel, blocks, smem, x, data, scale, zero, group, residual, y, f32x ? 4 : 2);
}

template <int M, int R, int U>
void launch_w8(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
               const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  auto kernel = gemv_w8_kernel<M, R, U>;
  const size_t smem = gemv_smem("gemv_w8a16", reinterpret_cast<const void*>(kernel), M, K, 2);
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, R);
  kernels::pdl::launch(
      kernel, dim3(blocks), dim3(kThreads), smem, at::cuda::getCurrentCUDAStream(),
      reinterpret_cast<const int4*>(data.data_ptr()), scale.const_data_ptr<float>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), N, static_cast<int>(K / 16), static_cast<int>(x_row_bytes(K, 2)));
}

// Tensor-core w4 GEMV (gemv_w4_tc_kernel): Wd words per lane and chunk, U chunks in flight (2 U
// loads of 4 Wd bytes per lane, ~128 bytes); `ks` warps per 16-row tile.
template <int Wd, int U>
void launch_w4_tc(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                  const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y,
                  int ks) {
  const int64_t N = data.size(0), K = x.size(1), M = x.size(0);
  auto kernel = gemv_w4_tc_kernel<Wd, U>;
  const int64_t x_stride = tc_x_row_bytes(K);
  const size_t smem = static_cast<size_t>(kTcRedBytes + M * x_stride);
  TORCH_CHECK(smem <= smem_limit(), "gemv_w4a16: x [", M, ", ", K, "] needs ", smem,
              " bytes of shared memory (tensor-core variant), the device allows ", smem_limit());
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  if (ks == 0) {
    // Auto: as many warps per tile (<= 8) as leave each a full U chunks of one row.
    const int64_t n_chunks = K / (32 * Wd);
    ks = kWarps;
    while (ks > 1 && static_cast<int64_t>(ks) * U > n_chunks) ks /= 2;
  }
  // A block covers kWarps / ks tiles of 16 rows: 16 / ks rows per warp.
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, 16 / ks);
  kernels::pdl::launch(
      kernel, dim3(blocks), dim3(kThreads), smem, at::cuda::getCurrentCUDAStream(),
      reinterpret_cast<const uint32_t*>(data.data_ptr()),
      reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.const_data_ptr<uint8_t>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), static_cast<int>(N), static_cast<int>(M), static_cast<int>(K / 8),
      static_cast<int>(K / group), FastDiv(static_cast<uint32_t>(group / (32 * Wd))), ks,
      static_cast<int>(x_stride));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Variant 100 (auto warps per tile) or 101 / 102 / 104 / 108 (1, 2, 4, 8 warps per tile); the
// load width follows the group: 16 bytes per lane when g % 128 == 0, 8 at g % 64, else 4.
void gemv_w4_tc(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y,
                int variant) {
  const int ks = variant == 100 ? 0 : variant - 100;
  TORCH_CHECK(ks == 0 || ks == 1 || ks == 2 || ks == 4 || ks == 8,
              "gemv_w4a16: unknown variant ", variant);
  if (group % 128 == 0) {
    launch_w4_tc<4, 4>(x, data, scale, zero, group, residual, y, ks);
  } else if (group % 64 == 0) {
    launch_w4_tc<2, 6>(x, data, scale, zero, group, residual, y, ks);
  } else {
    launch_w4_tc<1, 8>(x, data, scale, zero, group, residual, y, ks);
  }
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

void check_dequant_dtype(const char* fn, c10::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kBFloat16 || dtype == at::kHalf || dtype == at::kFloat, fn,
              ": expected dtype BFloat16, Half or Float, got ", dtype);
}

unsigned dequant_blocks(int64_t units) {
  return static_cast<unsigned>((units + kThreads * kDqSteps - 1) / (kThreads * kDqSteps));
}

// Grid-stride kernels: enough blocks to fill the GPU, no more.
unsigned any_blocks(int64_t total) {
  return static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, 4096));
}

// Calls launch(T* out) with the CUDA element type of out (bf16, half or float).
template <typename Launch>
void launch_for_dtype(at::Tensor& out, Launch launch) {
  switch (out.scalar_type()) {
    case at::kBFloat16:
      launch(reinterpret_cast<__nv_bfloat16*>(out.data_ptr()));
      break;
    case at::kHalf:
      launch(reinterpret_cast<__half*>(out.data_ptr()));
      break;
    default:
      launch(out.data_ptr<float>());
      break;
  }
}

}  // namespace

at::Tensor gemv_w4a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor& zero, int64_t group, const at::Tensor* residual,
                      int variant) {
  constexpr const char* fn = "gemv_w4a16";
  check_cuda_matrix(fn, "data", data);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1) * 2;
  TORCH_CHECK(K > 0 && K % 32 == 0, fn,
              ": expected K > 0 and K % 32 == 0 (16-byte vectors of 32 int4), got K = ", K);
  TORCH_CHECK(group > 0 && group % 32 == 0 && K % group == 0, fn,
              ": expected a group that is a multiple of 32 and divides K = ", K, ", got ", group);
  TORCH_CHECK(
      N < (int64_t{1} << 30) && K < (int64_t{1} << 31) && N * (K / group) < (int64_t{1} << 31), fn,
      ": N = ", N, ", K = ", K, ", group = ", group, " exceed 32-bit indexing");
  check_tensor(fn, "data", data, at::kByte, {N, K / 2}, device);
  check_aligned(fn, "data", data, 16);
  check_tensor(fn, "scale", scale, at::kBFloat16, {N, K / group}, device);
  check_tensor(fn, "zero", zero, at::kByte, {N, K / group}, device);
  const int64_t M = check_gemv_x(fn, x, K, device);
  residual = check_residual(fn, residual, M, N, device);
  const c10::cuda::CUDAGuard guard(device);
  if (variant == 203 || variant == 204) {  // the pipelined kernel; M = 1 only (else the default)
    if (M > 1) return gemv_w4a16(x, data, scale, zero, group, residual);
    at::Tensor y = at::empty({M, N}, x.options());
    if (N == 0) return y;
    if (variant == 203) {
      launch_w4_pipe<3>(x, data, scale, zero, group, residual, y);
    } else {
      launch_w4_pipe<4>(x, data, scale, zero, group, residual, y);
    }
    return y;
  }
  if (variant >= 100) {  // tensor cores (benchmarks): its own shared-memory layout of x
    if (M > 1 && static_cast<size_t>(kTcRedBytes + M * tc_x_row_bytes(K)) > smem_limit()) {
      return split_rows(x, residual, [&](const at::Tensor& xh, const at::Tensor* rh) {
        return gemv_w4a16(xh, data, scale, zero, group, rh, variant);
      });
    }
    at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
    if (N > 0) gemv_w4_tc(x, data, scale, zero, group, residual, y, variant);
    return y;
  }
  if (M > 1 && static_cast<size_t>(M * x_row_bytes(K, 2)) > smem_limit()) {
    return split_rows(x, residual, [&](const at::Tensor& xh, const at::Tensor* rh) {
      return gemv_w4a16(xh, data, scale, zero, group, rh);
    });
  }
  at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
  if (N == 0) return y;
  // R = 2 rows x U = 4 vectors per lane: 8 x 16 B (256 weights) in flight per lane, and N / 2
  // warps (2048 for N = 4096) to fill the GPU. The kernel is close to issue-bound (~3.9
  // instructions per weight at M = 1 against 0.5 bytes), so the x work per weight matters: at
  // M = 1 x is staged as fp32 when K <= 16384 (no conversions; 2 LDS.128 per 8 columns shared
  // by the 2 rows); at M >= 3 the FFMAs dominate and 4 rows halve the per-weight x work again
  // (U = 2 keeps registers in check).
  if (M == 1 && variant != 0) {
    TORCH_CHECK(x_row_bytes(K, 4) <= 72 * 1024, fn, ": variants need K <= 16384");
    switch (variant) {
      case 14: launch_w4<1, 1, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 18: launch_w4<1, 1, 8, true>(x, data, scale, zero, group, residual, y); break;
      case 24: launch_w4<1, 2, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 42: launch_w4<1, 4, 2, true>(x, data, scale, zero, group, residual, y); break;
      case 44: launch_w4<1, 4, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 81: launch_w4<1, 8, 1, true>(x, data, scale, zero, group, residual, y); break;
      case 82: launch_w4<1, 8, 2, true>(x, data, scale, zero, group, residual, y); break;
      default: TORCH_CHECK(false, fn, ": unknown variant ", variant);
    }
    return y;
  }
  switch (M) {
    case 1:
      // Tensor cores where they measured faster in a CUDA graph (docs/benchmarks.md, H200): 2 warps
      // per 16-row tile for tall matrices with short rows (14336x4096: 13.0 us against 15.1 us),
      // 8 for long rows (4096x14336: 13.3 us against 14.2 us). Elsewhere the register-staged
      // kernel (4096x4096: 5.2 us against 5.8 us; 1024x4096: 2.8 us against 3.2 us).
      if (group % 128 == 0 && ((N >= 8192 && K <= 4096) || K >= 8192) &&
          static_cast<size_t>(kTcRedBytes + tc_x_row_bytes(K)) <= smem_limit()) {
        gemv_w4_tc(x, data, scale, zero, group, residual, y, K >= 8192 ? 100 : 102);
      } else if (x_row_bytes(K, 4) <= 72 * 1024) {
        launch_w4<1, 2, 4, true>(x, data, scale, zero, group, residual, y);
      } else {
        launch_w4<1, 2, 4>(x, data, scale, zero, group, residual, y);
      }
      break;
    case 2:
      launch_w4<2, 2, 4>(x, data, scale, zero, group, residual, y);
      break;
    case 3:
      launch_w4<3, 4, 2>(x, data, scale, zero, group, residual, y);
      break;
    default:
      launch_w4<4, 4, 2>(x, data, scale, zero, group, residual, y);
      break;
  }
  return y;
}

at::Tensor gemv_w8a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor* residual) {
  constexpr const char* fn = "gemv_w8a16";
  check_cuda_matrix(fn, "data", data);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1);
  TORCH_CHECK(K > 0 && K % 16 == 0, fn,
              ": expected K % 16 == 0 (16-byte vectors of int8), got K = ", K);
  TORCH_CHECK(N < (int64_t{1} << 31) && K < (int64_t{1} << 31), fn, ": N = ", N, ", K = ", K,
              " exceed 32-bit indexing");
  check_tensor(fn, "data", data, at::kChar, {N, K}, device);
  check_aligned(fn, "data", data, 16);
  check_tensor(fn, "scale", scale, at::kFloat, {N, 1}, device);
  const int64_t M = check_gemv_x(fn, x, K, device);
  residual = check_residual(fn, residual, M, N, device);
  const c10::cuda::CUDAGuard guard(device);
  if (M > 1 && static_cast<size_t>(M * x_row_bytes(K, 2)) > smem_limit()) {
    return split_rows(x, residual, [&](const at::Tensor& xh, const at::Tensor* rh) {
      return gemv_w8a16(xh, data, scale, rh);
    });
  }
  at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
  if (N == 0) return y;
  switch (M) {
    case 1:
      launch_w8<1, 2, 4>(x, data, scale, residual, y);
      break;
    case 2:
      launch_w8<2, 2, 4>(x, data, scale, residual, y);
      break;
    case 3:
      launch_w8<3, 4, 2>(x, data, scale, residual, y);
      break;
    default:
      launch_w8<4, 4, 2>(x, data, scale, residual, y);
      break;
  }
  return y;
}

at::Tensor dequant_w4(const at::Tensor& data, const at::Tensor& scale, const at::Tensor& zero,
                      int64_t group, c10::ScalarType dtype) {
  constexpr const char* fn = "dequant_w4";
  check_cuda_matrix(fn, "data", data);
  check_dequant_dtype(fn, dtype);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1) * 2;
  TORCH_CHECK(group > 0 && K % group == 0, fn, ": expected a group that divides K = ", K, ", got ",
              group);
  check_tensor(fn, "data", data, at::kByte, {N, K / 2}, device);
  check_tensor(fn, "scale", scale, at::kBFloat16, {N, K / group}, device);
  check_tensor(fn, "zero", zero, at::kByte, {N, K / group}, device);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor out = at::empty({N, K}, data.options().dtype(dtype));  // [N, K]
  const int64_t units = N * K / 8;
  if (N * K == 0) return out;
  const bool vectorized = K % 8 == 0 && group % 8 == 0 && units < (int64_t{1} << 31) &&
                          reinterpret_cast<uintptr_t>(data.data_ptr()) % 4 == 0;
  auto launch = [&](auto* out_ptr) {
    using T = std::remove_pointer_t<decltype(out_ptr)>;
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    const auto* s = reinterpret_cast<const uint16_t*>(scale.data_ptr());
    if (vectorized) {
      dequant_w4_kernel<T><<<dequant_blocks(units), kThreads, 0, stream>>>(
          reinterpret_cast<const uint32_t*>(data.data_ptr()), s, zero.data_ptr<uint8_t>(), out_ptr,
          static_cast<uint32_t>(units), static_cast<uint32_t>(K / 8),
          FastDiv(static_cast<uint32_t>(K / 8)), FastDiv(static_cast<uint32_t>(group / 8)),
          static_cast<uint32_t>(K / group));
    } else {
      dequant_w4_any_kernel<T><<<any_blocks(N * K), kThreads, 0, stream>>>(
          data.data_ptr<uint8_t>(), s, zero.data_ptr<uint8_t>(), out_ptr, N, K, group);
    }
  };
  launch_for_dtype(out, launch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor dequant_w8(const at::Tensor& data, const at::Tensor& scale, c10::ScalarType dtype) {
  constexpr const char* fn = "dequant_w8";
  check_cuda_matrix(fn, "data", data);
  check_dequant_dtype(fn, dtype);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1);
  check_tensor(fn, "data", data, at::kChar, {N, K}, device);
  check_tensor(fn, "scale", scale, at::kFloat, {N, 1}, device);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor out = at::empty({N, K}, data.options().dtype(dtype));  // [N, K]
  const int64_t units = N * K / 8;
  if (N * K == 0) return out;
  const bool vectorized = K % 8 == 0 && units < (int64_t{1} << 31) &&
                          reinterpret_cast<uintptr_t>(data.data_ptr()) % 8 == 0;
  auto launch = [&](auto* out_ptr) {
    using T = std::remove_pointer_t<decltype(out_ptr)>;
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    if (vectorized) {
      dequant_w8_kernel<T><<<dequant_blocks(units), kThreads, 0, stream>>>(
          reinterpret_cast<const uint2*>(data.data_ptr()), scale.data_ptr<float>(), out_ptr,
          static_cast<uint32_t>(units), FastDiv(static_cast<uint32_t>(K / 8)));
    } else {
      dequant_w8_any_kernel<T><<<any_blocks(N * K), kThreads, 0, stream>>>(
          data.data_ptr<int8_t>(), scale.data_ptr<float>(), out_ptr, N, K);
    }
  };
  launch_for_dtype(out, launch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace jointnas::quant::cuda
