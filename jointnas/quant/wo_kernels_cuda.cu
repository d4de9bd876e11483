// Weight-only quantized GEMV (w4a16 grouped asymmetric, w8a16 per-channel) and dequantization
// kernels for the layouts of pack.h; references: linear_ref / dequantize_ref in quantize.h.
//
// The GEMVs follow kernels/gemv_cuda.cu: memory-bound, so built for bytes in flight. x [M, K] is
// staged in shared memory (as bf16, swizzled so that the warp's 16-byte reads are bank-conflict
// free); each warp owns R rows and each lane issues R x U independent 16-byte weight loads (plus
// the matching scale / zero loads) before using any of them; 8 warps per block; warp-shuffle
// reduction; the optional residual epilogue rounds twice, as the unfused `r + linear(x)`. Every
// weight byte is loaded once and used for all M rows of x.
//
// Conversion without I2F: OR-ing an integer i < 2^23 into the mantissa of 2^23 gives the fp32
// value 2^23 + i exactly, so one LOP3 (mask | magic) and one FFMA / FADD with a per-group
// constant give (q - zero) exactly in fp32 (see nibbles_minus_zero). The products with bf16 x are
// exact in fp32 (<= 12 significant bits), summed in fp32; for w4 the group scale multiplies the
// 32-column partial sum (each 16-byte vector lies inside one group since group % 32 == 0).
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

// Per-group constants c[j] = -(2^(23 - 4j) + z), built from bits (z sits at the mantissa's unit
// of 2^(23 - 4j), which is 2^-4j); exact for z < 2^11.
__device__ __forceinline__ void zero_consts(uint32_t z, float (&c)[4]) {
  c[0] = -as_float(0x4B000000u | z);          // 2^23 + z
  c[1] = -as_float(0x49000000u | (z << 4));   // 2^19 + z
  c[2] = -as_float(0x47000000u | (z << 8));   // 2^15 + z
  c[3] = -as_float(0x45000000u | (z << 12));  // 2^11 + z
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

// Shared-memory position of 16-byte unit t of a row of x, where kUnits units cover one weight
// vector (4 for w4: 32 columns, 2 for w8: 16 columns). Lane l reads unit c of vector l, i.e.
// lanes are kUnits * 16 bytes apart: without the swizzle 8 lanes of a phase would hit only 2
// (w4) or 4 (w8) of the 8 16-byte bank groups. XOR-ing c with bits of the vector index spreads
// every 8 consecutive lanes over all 8.
template <int kUnits>
__device__ __forceinline__ int swizzle_bits(int vec) {
  return (vec * kUnits / 8) & (kUnits - 1);
}

template <int M, int kUnits>
__device__ __forceinline__ void stage_x(int4* xs, const int4* __restrict__ x, int k8) {
#pragma unroll
  for (int m = 0; m < M; ++m) {
    for (int t = threadIdx.x; t < k8; t += kThreads) {
      const int c = t & (kUnits - 1);
      xs[m * k8 + (t - c) + (c ^ swizzle_bits<kUnits>(t / kUnits))] = x[m * k8 + t];
    }
  }
}

// Warp-reduces acc[r][m], multiplies the sum by row_scale[r], and lets lane r * M + m store
// y[m, row0 + r] (rows past N are not written). With a residual: bf16(r + bf16(acc)), the rounding of the unfused expression.
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

// ---------------------------------------------------------------------------------------------
// w4a16 GEMV. A 16-byte vector holds 32 nibbles = 32 columns of one group. Per lane and chunk:
// R x U vectors + R x U (scale, zero) pairs in flight; then per 8-column word: 1 LDS.128 of x
// per row of x (shared by the R weight rows), 2 instructions per nibble for (q - z), M FFMAs.
template <int M, int R, int U>
__global__ void __launch_bounds__(kThreads)
    gemv_w4_kernel(const int4* __restrict__ data,        // [N, K / 32] vectors of 32 nibbles
                   const uint16_t* __restrict__ scale,   // [N, G] bf16 bits
                   const uint8_t* __restrict__ zero,     // [N, G]
                   const int4* __restrict__ x,           // [M, K / 8] vectors of 8 bf16
                   __nv_bfloat16* __restrict__ y,        // [M, N]
                   const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                   int64_t n_rows, int k32, int groups, FastDiv vecs_per_group) {
  extern __shared__ int4 xs[];  // [M, K / 8], swizzled (stage_x)
  const int k8 = k32 * 4;
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * R;
  const int4* wr[R];
  const uint16_t* sr[R];
  const uint8_t* zr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end re-read the last row (results discarded): no branches in the loop, and
    // every warp reaches the __syncthreads below.
    const int64_t row = min(row0 + r, n_rows - 1);
    wr[r] = data + row * k32;
    sr[r] = scale + row * groups;
    zr[r] = zero + row * groups;
  }
  // Two partial sums per row at M = 1 so that the FFMA chains are not latency-bound.
  constexpr int P = M == 1 ? 2 : 1;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  const int sw = swizzle_bits<4>(lane);

  // The chunk loop's trip count is the same for every thread (uniform bound), so the staging
  // barrier inside its first iteration is reached by all.
  for (int base = 0; base < k32; base += 32 * U) {
    int4 wv[R][U];
    uint32_t sv[R][U], zv[R][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
      const uint32_t g = vecs_per_group.div(static_cast<uint32_t>(v));
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (v < k32) {
          wv[r][u] = __ldg(wr[r] + v);
          sv[r][u] = __ldg(sr[r] + g);
          zv[r][u] = __ldg(zr[r] + g);
        } else {
          wv[r][u] = make_int4(0, 0, 0, 0);
          sv[r][u] = zv[r][u] = 0;
        }
      }
    }
    // x is staged while the first weight loads are in flight.
    if (base == 0) {
      stage_x<M, 4>(xs, x, k8);
      __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
      if (v >= k32) continue;  // only in the last chunk
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
        for (int m = 0; m < M; ++m) bf16x8_to_float(xs[m * k8 + 4 * v + (c ^ sw)], xf[m]);
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
  }
  float one[R];
#pragma unroll
  for (int r = 0; r < R; ++r) one[r] = 1.f;  // the group scales are already applied
  reduce_store<M, R>(acc, one, lane, row0, n_rows, y, residual);
}

// ---------------------------------------------------------------------------------------------
// w8a16 GEMV. A 16-byte vector holds 16 int8 columns; one fp32 scale per row multiplies the
// finished sum, so the loop only converts (XOR + PRMT + FADD) and accumulates.
template <int M, int R, int U>
__global__ void __launch_bounds__(kThreads)
    gemv_w8_kernel(const int4* __restrict__ data,   // [N, K / 16] vectors of 16 int8
                   const float* __restrict__ scale,  // [N]
                   const int4* __restrict__ x,       // [M, K / 8] vectors of 8 bf16
                   __nv_bfloat16* __restrict__ y,    // [M, N]
                   const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                   int64_t n_rows, int k16) {
  extern __shared__ int4 xs[];  // [M, K / 8], swizzled (stage_x)
  const int k8 = k16 * 2;
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * R;
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
  const int sw = swizzle_bits<2>(lane);

  for (int base = 0; base < k16; base += 32 * U) {  // uniform trip count (see gemv_w4_kernel)
    int4 wv[R][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r) wv[r][u] = v < k16 ? __ldg(wr[r] + v) : make_int4(0, 0, 0, 0);
    }
    if (base == 0) {
      stage_x<M, 2>(xs, x, k8);
      __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + lane + 32 * u;
      if (v >= k16) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // 8 columns per half vector
        float xf[M][8];
#pragma unroll
        for (int m = 0; m < M; ++m) bf16x8_to_float(xs[m * k8 + 2 * v + (h ^ sw)], xf[m]);
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

// ---------------------------------------------------------------------------------------------
// Host side: argument checks (expected vs got), launch configuration.

void check_tensor(const char* fn, const char* name, const at::Tensor& t, at::ScalarType dtype,
                  at::IntArrayRef shape, c10::Device device) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": expected ", name, " of dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == device, fn, ": expected ", name, " on ", device, ", got ",
              t.device());
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

// x is staged whole in shared memory: M * K * 2 bytes; above 48 KiB the kernel must opt in.
size_t gemv_smem(const char* fn, const void* kernel, int64_t M, int64_t K) {
  const size_t smem = static_cast<size_t>(M * K) * 2;
  const size_t limit = at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin;
  TORCH_CHECK(smem <= limit, fn, ": x [", M, ", ", K, "] needs ", smem,
              " bytes of shared memory, the device allows ", limit);
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  return smem;
}

const __nv_bfloat16* bf16_ptr(const at::Tensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const __nv_bfloat16*>(t->data_ptr());
}

template <int M, int R, int U>
void launch_w4(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
               const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  auto kernel = gemv_w4_kernel<M, R, U>;
  const size_t smem = gemv_smem("gemv_w4a16", reinterpret_cast<const void*>(kernel), M, K);
  const int64_t blocks = (N + kWarps * R - 1) / (kWarps * R);
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, at::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const int4*>(data.data_ptr()),
      reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.data_ptr<uint8_t>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), N, static_cast<int>(K / 32), static_cast<int>(K / group),
      FastDiv(static_cast<uint32_t>(group / 32)));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <int M, int R, int U>
void launch_w8(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
               const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  auto kernel = gemv_w8_kernel<M, R, U>;
  const size_t smem = gemv_smem("gemv_w8a16", reinterpret_cast<const void*>(kernel), M, K);
  const int64_t blocks = (N + kWarps * R - 1) / (kWarps * R);
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, at::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const int4*>(data.data_ptr()), scale.data_ptr<float>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), N, static_cast<int>(K / 16));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void check_dequant_dtype(const char* fn, c10::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kBFloat16 || dtype == at::kHalf || dtype == at::kFloat, fn,
              ": expected dtype BFloat16, Half or Float, got ", dtype);
}

// Flat indices of 8-value units are 32-bit (FastDiv needs n < 2^31).
void check_units(const char* fn, int64_t units) {
  TORCH_CHECK(units < (int64_t{1} << 31), fn, ": ", units,
              " 8-value units exceed the kernel's 32-bit indexing (< 2^31)");
}

unsigned dequant_blocks(int64_t units) {
  return static_cast<unsigned>((units + kThreads * kDqSteps - 1) / (kThreads * kDqSteps));
}

}  // namespace

at::Tensor gemv_w4a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor& zero, int64_t group, const at::Tensor* residual) {
  constexpr const char* fn = "gemv_w4a16";
  check_cuda_matrix(fn, "data", data);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1) * 2;
  TORCH_CHECK(K > 0 && K % 32 == 0, fn, ": expected K % 32 == 0 (16-byte vectors of 32 int4), "
              "got K = ", K);
  TORCH_CHECK(group > 0 && group % 32 == 0 && K % group == 0, fn,
              ": expected a group that is a multiple of 32 and divides K = ", K, ", got ", group);
  TORCH_CHECK(N < (int64_t{1} << 31) && K < (int64_t{1} << 31), fn, ": N = ", N, ", K = ", K,
              " exceed 32-bit indexing");
  check_tensor(fn, "data", data, at::kByte, {N, K / 2}, device);
  check_aligned(fn, "data", data, 16);
  check_tensor(fn, "scale", scale, at::kBFloat16, {N, K / group}, device);
  check_tensor(fn, "zero", zero, at::kByte, {N, K / group}, device);
  const int64_t M = check_gemv_x(fn, x, K, device);
  residual = check_residual(fn, residual, M, N, device);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
  if (N == 0) return y;
  // R = 2 rows x U = 4 vectors per lane (8 x 16 B in flight per lane) keeps x's shared-memory
  // reads and bf16 -> fp32 conversions at 1/2 per weight for M <= 2; at M >= 3 the FFMAs
  // dominate, and 4 rows halve the per-weight x work again (U = 2 keeps registers in check).
  switch (M) {
    case 1: launch_w4<1, 2, 4>(x, data, scale, zero, group, residual, y); break;
    case 2: launch_w4<2, 2, 4>(x, data, scale, zero, group, residual, y); break;
    case 3: launch_w4<3, 4, 2>(x, data, scale, zero, group, residual, y); break;
    default: launch_w4<4, 4, 2>(x, data, scale, zero, group, residual, y); break;
  }
  return y;
}

at::Tensor gemv_w8a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor* residual) {
  constexpr const char* fn = "gemv_w8a16";
  check_cuda_matrix(fn, "data", data);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1);
  TORCH_CHECK(K > 0 && K % 16 == 0, fn, ": expected K % 16 == 0 (16-byte vectors of int8), got K = ",
              K);
  TORCH_CHECK(N < (int64_t{1} << 31) && K < (int64_t{1} << 31), fn, ": N = ", N, ", K = ", K,
              " exceed 32-bit indexing");
  check_tensor(fn, "data", data, at::kChar, {N, K}, device);
  check_aligned(fn, "data", data, 16);
  check_tensor(fn, "scale", scale, at::kFloat, {N, 1}, device);
  const int64_t M = check_gemv_x(fn, x, K, device);
  residual = check_residual(fn, residual, M, N, device);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
  if (N == 0) return y;
  switch (M) {
    case 1: launch_w8<1, 2, 4>(x, data, scale, residual, y); break;
    case 2: launch_w8<2, 2, 4>(x, data, scale, residual, y); break;
    case 3: launch_w8<3, 4, 2>(x, data, scale, residual, y); break;
    default: launch_w8<4, 4, 2>(x, data, scale, residual, y); break;
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
  TORCH_CHECK(K % 8 == 0, fn, ": expected K % 8 == 0 (32-bit words of 8 int4), got K = ", K);
  TORCH_CHECK(group > 0 && group % 8 == 0 && K % group == 0, fn,
              ": expected a group that is a multiple of 8 and divides K = ", K, ", got ", group);
  check_tensor(fn, "data", data, at::kByte, {N, K / 2}, device);
  check_aligned(fn, "data", data, 4);
  check_tensor(fn, "scale", scale, at::kBFloat16, {N, K / group}, device);
  check_tensor(fn, "zero", zero, at::kByte, {N, K / group}, device);
  const int64_t units = N * K / 8;
  check_units(fn, units);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor out = at::empty({N, K}, data.options().dtype(dtype));  // [N, K]
  if (units == 0) return out;
  auto launch = [&](auto* out_ptr) {
    using T = std::remove_pointer_t<decltype(out_ptr)>;
    dequant_w4_kernel<T><<<dequant_blocks(units), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const uint32_t*>(data.data_ptr()),
        reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.data_ptr<uint8_t>(), out_ptr,
        static_cast<uint32_t>(units), static_cast<uint32_t>(K / 8),
        FastDiv(static_cast<uint32_t>(K / 8)), FastDiv(static_cast<uint32_t>(group / 8)),
        static_cast<uint32_t>(K / group));
  };
  if (dtype == at::kBFloat16) {
    launch(reinterpret_cast<__nv_bfloat16*>(out.data_ptr()));
  } else if (dtype == at::kHalf) {
    launch(reinterpret_cast<__half*>(out.data_ptr()));
  } else {
    launch(out.data_ptr<float>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor dequant_w8(const at::Tensor& data, const at::Tensor& scale, c10::ScalarType dtype) {
  constexpr const char* fn = "dequant_w8";
  check_cuda_matrix(fn, "data", data);
  check_dequant_dtype(fn, dtype);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1);
  TORCH_CHECK(K % 8 == 0, fn, ": expected K % 8 == 0 (8-byte loads of int8), got K = ", K);
  check_tensor(fn, "data", data, at::kChar, {N, K}, device);
  check_aligned(fn, "data", data, 8);
  check_tensor(fn, "scale", scale, at::kFloat, {N, 1}, device);
  const int64_t units = N * K / 8;
  check_units(fn, units);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor out = at::empty({N, K}, data.options().dtype(dtype));  // [N, K]
  if (units == 0) return out;
  auto launch = [&](auto* out_ptr) {
    using T = std::remove_pointer_t<decltype(out_ptr)>;
    dequant_w8_kernel<T><<<dequant_blocks(units), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const uint2*>(data.data_ptr()), scale.data_ptr<float>(), out_ptr,
        static_cast<uint32_t>(units), FastDiv(static_cast<uint32_t>(K / 8)));
  };
  if (dtype == at::kBFloat16) {
    launch(reinterpret_cast<__nv_bfloat16*>(out.data_ptr()));
  } else if (dtype == at::kHalf) {
    launch(reinterpret_cast<__half*>(out.data_ptr()));
  } else {
    launch(out.data_ptr<float>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace jointnas::quant::cuda
