// Kernels for the formats that quantize activations too (w8a8: int8 x int8, fp8_e4m3: e4m3 x e4m3,
// per-token activation scales, per-row weight scales); references in quantize.h.
//
// quantize_act_*: one block per row of x. The row is read once into registers (up to 8 16-byte
// vectors per thread, K <= 16384), the block reduces amax exactly (a max never rounds), then every
// element is divided by the scale, rounded as the IEEE division quantize_act_ref does on the CPU
// wherever the code could differ (through the reciprocal and one correction: scale_division.h). (ATen on CUDA divides by a scalar through its reciprocal, so quantize_act_ref run on
// a CUDA tensor can differ from this kernel by an ulp of the scale; compare against the CPU.)
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
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "jointnas/quant/format.h"
#include "jointnas/kernels/fused.h"
#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/rowops_cuda.h"
#include "jointnas/kernels/staging_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/scale_division.h"

namespace jointnas::quant::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;

// ---------------------------------------------------------------------------------------------
// Argument checks (expected vs got).

// A defined CUDA tensor of `dtype` (read through its strides).
void check_tensor_device_dtype(const at::Tensor& t, const char* fn, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " must be defined");
  TORCH_CHECK(t.is_cuda(), fn, ": ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": ", name, " must be ", dtype, ", got ",
              t.scalar_type());
}

// The same, contiguous, and on the device of `same_device_as` when given.
void check_tensor(const at::Tensor& t, const char* fn, const char* name, at::ScalarType dtype,
                  const at::Tensor* same_device_as = nullptr) {
  check_tensor_device_dtype(t, fn, name, dtype);
  if (same_device_as != nullptr) {
    TORCH_CHECK(t.device() == same_device_as->device(), fn, ": ", name, " must be on ",
                same_device_as->device(), ", got ", t.device());
  }
  TORCH_CHECK(t.is_contiguous(), fn, ": ", name, " must be contiguous, got sizes ", t.sizes(),
              " strides ", t.strides());
}

// A per-row scale vector: fp32 [n, 1] or [n].
void check_scale(const at::Tensor& s, int64_t n, const char* fn, const char* name,
                 const at::Tensor& like) {
  check_tensor(s, fn, name, at::kFloat, &like);
  const bool ok =
      (s.dim() == 2 && s.size(0) == n && s.size(1) == 1) || (s.dim() == 1 && s.size(0) == n);
  TORCH_CHECK(ok, fn, ": ", name, " must be [", n, ", 1] or [", n, "], got ", s.sizes());
}

void check_residual(const at::Tensor* residual, int64_t M, int64_t N, const char* fn,
                    const at::Tensor& like) {
  if (residual == nullptr) return;
  check_tensor(*residual, fn, "residual", at::kBFloat16, &like);
  TORCH_CHECK(residual->dim() == 2 && residual->size(0) == M && residual->size(1) == N, fn,
              ": residual must be [", M, ", ", N, "], got ", residual->sizes());
}

bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

const __nv_bfloat16* bf16_or_null(const at::Tensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const __nv_bfloat16*>(t->data_ptr());
}

int max_dynamic_smem() {
  int device = 0, bytes = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
}

__device__ __forceinline__ uint32_t word(const int4& v, int c) {
  // c is a compile-time constant after unrolling: this selects a register, no local memory.
  return static_cast<uint32_t>(c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w);
}

// ---------------------------------------------------------------------------------------------
// Per-token activation quantization.

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

__device__ __forceinline__ void bf16x8_to_float(const int4& v, float (&f)[8]) {
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const uint32_t w = word(v, c);
    f[2 * c] = __uint_as_float(w << 16);  // a bf16 is the upper half of an fp32
    f[2 * c + 1] = __uint_as_float(w & 0xffff0000u);
  }
}

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

// One block per row. V > 0: each thread keeps V 16-byte vectors of the row in registers (needs
// K % 8 == 0, 16-byte aligned rows, K / 8 <= V * blockDim.x). V == 0: vectors, re-read from
// global (L1 / L2) for the second pass. V < 0: scalar loads, any K and alignment.
template <bool kFp8, int V>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_act_kernel(const __nv_bfloat16* __restrict__ x,
                        typename ActQuant<kFp8>::Out* __restrict__ q, float* __restrict__ scale,
                        int64_t K) {
  using Q = ActQuant<kFp8>;
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  __shared__ float red[kQuantThreads / 32];
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* xr = x + row * K;
  auto* qr = q + row * K;
  float amax = 0.0f;
  float s;
  if constexpr (V > 0) {
    const int4* xv = reinterpret_cast<const int4*>(xr);
    uint2* qv = reinterpret_cast<uint2*>(qr);
    const int k8 = static_cast<int>(K / 8);
    int4 v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const int i = threadIdx.x + j * blockDim.x;
      v[j] = i < k8 ? __ldg(xv + i) : make_int4(0, 0, 0, 0);  // zeros leave amax unchanged
      float f[8];
      bf16x8_to_float(v[j], f);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(f[e]));
    }
    s = row_scale<kFp8>(block_max(amax, red));
    const ScaleDivision div(s);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const int i = threadIdx.x + j * blockDim.x;
      if (i < k8) {
        float f[8];
        bf16x8_to_float(v[j], f);
        qv[i] = make_uint2(Q::four(f[0], f[1], f[2], f[3], div), Q::four(f[4], f[5], f[6], f[7], div));
      }
    }
  } else if constexpr (V == 0) {
    const int4* xv = reinterpret_cast<const int4*>(xr);
    uint2* qv = reinterpret_cast<uint2*>(qr);
    const int64_t k8 = K / 8;
    for (int64_t i = threadIdx.x; i < k8; i += blockDim.x) {
      float f[8];
      bf16x8_to_float(__ldg(xv + i), f);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(f[e]));
    }
    s = row_scale<kFp8>(block_max(amax, red));
    const ScaleDivision div(s);
    for (int64_t i = threadIdx.x; i < k8; i += blockDim.x) {
      float f[8];
      bf16x8_to_float(__ldg(xv + i), f);
      qv[i] = make_uint2(Q::four(f[0], f[1], f[2], f[3], div), Q::four(f[4], f[5], f[6], f[7], div));
    }
  } else {
    for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
      amax = fmaxf(amax, fabsf(__bfloat162float(xr[i])));
    }
    s = row_scale<kFp8>(block_max(amax, red));
    const ScaleDivision div(s);
    for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
      qr[i] = static_cast<typename Q::Out>(Q::one(__bfloat162float(xr[i]), div));
    }
  }
  if (threadIdx.x == 0) scale[row] = s;
}

template <bool kFp8>
std::pair<at::Tensor, at::Tensor> quantize_act(const at::Tensor& x, const char* fn) {
  check_tensor(x, fn, "x", at::kBFloat16);
  TORCH_CHECK(x.dim() == 2, fn, ": x must be [M, K], got ", x.sizes());
  const int64_t M = x.size(0), K = x.size(1);
  TORCH_CHECK(K >= 1, fn, ": x must have K >= 1 columns, got ", K);
  TORCH_CHECK(M <= INT32_MAX, fn, ": at most ", INT32_MAX, " rows, got ", M);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor q = at::empty({M, K}, x.options().dtype(kFp8 ? at::kFloat8_e4m3fn : at::kChar));
  at::Tensor scale = at::empty({M, 1}, x.options().dtype(at::kFloat));
  if (M == 0) return {q, scale};

  const auto* xp = reinterpret_cast<const __nv_bfloat16*>(x.data_ptr());
  auto* qp = reinterpret_cast<typename ActQuant<kFp8>::Out*>(q.data_ptr());
  float* sp = scale.data_ptr<float>();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto grid = static_cast<unsigned>(M);
  const int64_t k8 = K / 8;
  auto run = [&](auto kernel, unsigned threads) {
    kernels::pdl::launch(kernel, dim3(grid), dim3(threads), 0, stream, xp, qp, sp, K);
  };
  if (K % 8 != 0 || !aligned16(x)) {
    run(quantize_act_kernel<kFp8, -1>, kQuantThreads);
  } else if (k8 <= kQuantThreads) {
    // Short rows: one vector per thread, as many warps as the row needs.
    run(quantize_act_kernel<kFp8, 1>, static_cast<unsigned>((k8 + 31) / 32 * 32));
  } else if (k8 <= 2 * kQuantThreads) {
    run(quantize_act_kernel<kFp8, 2>, kQuantThreads);
  } else if (k8 <= 4 * kQuantThreads) {
    run(quantize_act_kernel<kFp8, 4>, kQuantThreads);
  } else if (k8 <= kQuantMaxVecs * kQuantThreads) {
    run(quantize_act_kernel<kFp8, kQuantMaxVecs>, kQuantThreads);
  } else {
    run(quantize_act_kernel<kFp8, 0>, kQuantThreads);
  }
  return {q, scale};
}

// ---------------------------------------------------------------------------------------------
// Producers that quantize their own output per token (the input of a w8a8 / fp8 linear): RMSNorm
// and SiLU(gate) * up write the 1-byte codes and the row's scale in one pass. The produced row is
// kept in registers, rounded to bf16 exactly as the unfused kernel (kernels/fused_cuda.cu) rounds
// it, and never reaches global memory. Bitwise quantize_act(rms_norm(x)) and
// quantize_act(silu_mul(gu)): the same thread layout as rms_norm_vec_kernel, so the sum of squares
// adds the same numbers in the same order, then the rest of quantize_act_kernel. Needs rows of a
// multiple of 8 values, 16-byte aligned, at most kQuantMaxVecs * kQuantThreads vectors.

static_assert(kQuantThreads == kernels::kRowThreads, "the producers share RMSNorm's thread layout");

using Bf16 = c10::BFloat16;  // the unfused kernels' element type, so the same conversions run

__device__ __forceinline__ int4 bf16x8_pack(const Bf16 (&e)[8]) {
  int4 v;
  static_assert(sizeof(v) == sizeof(e));
  memcpy(&v, e, sizeof(v));
  return v;
}

// The second half of quantize_act_kernel<V > 0>: the row's amax from the produced values held in
// v[0..V), the block-wide scale, the codes.
template <bool kFp8, int V, int kThreads = kQuantThreads>
__device__ __forceinline__ void quantize_held_row(const int4 (&v)[V], int k8,
                                                  typename ActQuant<kFp8>::Out* __restrict__ qr,
                                                  float* __restrict__ scale, float* red) {
  using Q = ActQuant<kFp8>;
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    float f[8];
    bf16x8_to_float(v[j], f);  // zero vectors past the row leave amax unchanged
#pragma unroll
    for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(f[e]));
  }
  const float s = row_scale<kFp8>(block_max(amax, red));
  const ScaleDivision div(s);
  uint2* qv = reinterpret_cast<uint2*>(qr);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < k8) {
      float f[8];
      bf16x8_to_float(v[j], f);
      qv[i] = make_uint2(Q::four(f[0], f[1], f[2], f[3], div), Q::four(f[4], f[5], f[6], f[7], div));
    }
  }
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
}

template <bool kFp8, int V>
__global__ void __launch_bounds__(kQuantThreads)
    rms_norm_quantize_kernel(const int4* __restrict__ x, const int4* __restrict__ w,
                             typename ActQuant<kFp8>::Out* __restrict__ q, float* __restrict__ scale,
                             int64_t K, float eps) {
  __shared__ float red[kQuantThreads / 32];
  const int k8 = static_cast<int>(K / 8);
  int4 wv[V], v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kQuantThreads;
    wv[j] = i < k8 ? __ldg(w + i) : make_int4(0, 0, 0, 0);  // no earlier kernel writes w
  }
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  const int64_t row = blockIdx.x;
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kQuantThreads;
    v[j] = i < k8 ? x[row * k8 + i] : make_int4(0, 0, 0, 0);
    const Bf16* e = reinterpret_cast<const Bf16*>(&v[j]);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float f = static_cast<float>(e[k]);
      acc += f * f;
    }
  }
  const float rstd = rsqrtf(kernels::block_sum(acc) / static_cast<float>(K) + eps);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const Bf16* xe = reinterpret_cast<const Bf16*>(&v[j]);
    const Bf16* we = reinterpret_cast<const Bf16*>(&wv[j]);
    Bf16 out[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      out[k] = kernels::rms_norm_element<Bf16>(static_cast<float>(xe[k]), rstd, static_cast<float>(we[k]));
    }
    v[j] = bf16x8_pack(out);  // zero past the row: w * (0 * rstd) = 0
  }
  quantize_held_row<kFp8, V>(v, k8, q + row * K, scale, red);
}

// gu [M, 2I] (gate then up) -> codes of silu(gate) * up [M, I], kThreads (256, 512, 1024) per row.
template <bool kFp8, int V, int kThreads>
__global__ void __launch_bounds__(kThreads)
    silu_mul_quantize_kernel(const int4* __restrict__ gu, typename ActQuant<kFp8>::Out* __restrict__ q,
                             float* __restrict__ scale, int64_t I) {
  __shared__ float red[kThreads / 32];
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  const int i8 = static_cast<int>(I / 8);
  const int64_t row = blockIdx.x;
  const int4* g = gu + row * 2 * i8;
  int4 v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i >= i8) {
      v[j] = make_int4(0, 0, 0, 0);
      continue;
    }
    const int4 g4 = g[i], u4 = g[i8 + i];
    const Bf16* ge = reinterpret_cast<const Bf16*>(&g4);
    const Bf16* ue = reinterpret_cast<const Bf16*>(&u4);
    Bf16 out[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      out[k] = kernels::silu_mul_element<Bf16>(static_cast<float>(ge[k]), static_cast<float>(ue[k]));
    }
    v[j] = bf16x8_pack(out);
  }
  quantize_held_row<kFp8, V, kThreads>(v, i8, q + row * I, scale, red);
}

template <bool kFp8>
std::pair<at::Tensor, at::Tensor> empty_quantized(int64_t M, int64_t K, const at::Tensor& like) {
  return {at::empty({M, K}, like.options().dtype(kFp8 ? at::kFloat8_e4m3fn : at::kChar)),
          at::empty({M, 1}, like.options().dtype(at::kFloat))};
}

// The attention output quantized for o_proj: attn [B, nh, T, hd] (any strides with unit stride
// along hd) -> codes of attn.transpose(1, 2).reshape(B * T, nh * hd), the gather done by the loads
// (the bf16 transposed copy the unquantized path makes is never written). Row (b, t) holds nh
// heads of hd8 = hd / 8 vectors.
template <bool kFp8, int V>
__global__ void __launch_bounds__(kQuantThreads)
    heads_quantize_kernel(const __nv_bfloat16* __restrict__ attn,
                          typename ActQuant<kFp8>::Out* __restrict__ q, float* __restrict__ scale,
                          int64_t T, int hd8, int k8, int64_t sb, int64_t sh, int64_t st) {
  __shared__ float red[kQuantThreads / 32];
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();
  const int64_t row = blockIdx.x, b = row / T, t = row - b * T;
  const __nv_bfloat16* base = attn + b * sb + t * st;
  int4 v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kQuantThreads;
    const int h = i / hd8, d = i - h * hd8;
    v[j] = i < k8 ? __ldg(reinterpret_cast<const int4*>(base + h * sh) + d) : make_int4(0, 0, 0, 0);
  }
  quantize_held_row<kFp8, V>(v, k8, q + row * static_cast<int64_t>(k8) * 8, scale, red);
}

// Calls pick(std::integral_constant<int, V>{}) with the fewest 16-byte vectors per thread V that
// hold a row of k8 vectors over kQuantThreads threads.
template <class Pick>
void with_held_vectors(int64_t k8, Pick&& pick) {
  if (k8 <= kQuantThreads) {
    pick(std::integral_constant<int, 1>{});
  } else if (k8 <= 2 * kQuantThreads) {
    pick(std::integral_constant<int, 2>{});
  } else if (k8 <= 4 * kQuantThreads) {
    pick(std::integral_constant<int, 4>{});
  } else {
    pick(std::integral_constant<int, kQuantMaxVecs>{});
  }
}

// Whether a row of n bf16 values starting at every row of t can be held by the producers.
bool holds_rows(const at::Tensor& t, int64_t n) {
  return n % 8 == 0 && n / 8 <= kQuantMaxVecs * kQuantThreads && aligned16(t) &&
         t.size(1) % 8 == 0;
}

template <bool kFp8>
std::pair<at::Tensor, at::Tensor> rms_norm_quantize(const at::Tensor& x, const at::Tensor& w, double eps,
                                                    const char* fn) {
  check_tensor(x, fn, "x", at::kBFloat16);
  check_tensor(w, fn, "w", at::kBFloat16, &x);
  TORCH_CHECK(x.dim() == 2 && w.dim() == 1 && w.size(0) == x.size(1), fn,
              ": expected x [M, K] and w [K], got ", x.sizes(), " and ", w.sizes());
  const int64_t M = x.size(0), K = x.size(1);
  TORCH_CHECK(M <= INT32_MAX, fn, ": at most ", INT32_MAX, " rows, got ", M);
  if (!holds_rows(x, K) || !aligned16(w)) return quantize_act<kFp8>(kernels::rms_norm(x, w, eps), fn);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = empty_quantized<kFp8>(M, K, x);
  if (M == 0) return out;
  auto run = [&](auto kernel) {
    kernels::pdl::launch(kernel, dim3(static_cast<unsigned>(M)), dim3(kQuantThreads), 0,
                         at::cuda::getCurrentCUDAStream(), reinterpret_cast<const int4*>(x.data_ptr()),
                         reinterpret_cast<const int4*>(w.data_ptr()),
                         reinterpret_cast<typename ActQuant<kFp8>::Out*>(out.first.data_ptr()),
                         static_cast<float*>(out.second.data_ptr()), K, static_cast<float>(eps));
  };
  with_held_vectors(K / 8, [&](auto v) { run(rms_norm_quantize_kernel<kFp8, decltype(v)::value>); });
  return out;
}

template <bool kFp8>
std::pair<at::Tensor, at::Tensor> heads_quantize(const at::Tensor& attn, const char* fn) {
  check_tensor_device_dtype(attn, fn, "attn", at::kBFloat16);
  TORCH_CHECK(attn.dim() == 4, fn, ": expected attn [B, nh, T, hd], got ", attn.sizes());
  const int64_t B = attn.size(0), nh = attn.size(1), T = attn.size(2), hd = attn.size(3);
  const int64_t M = B * T, K = nh * hd;
  TORCH_CHECK(M <= INT32_MAX, fn, ": at most ", INT32_MAX, " rows, got ", M);
  const bool gather = hd % 8 == 0 && attn.stride(3) == 1 && attn.stride(0) % 8 == 0 &&
                      attn.stride(1) % 8 == 0 && attn.stride(2) % 8 == 0 && aligned16(attn) &&
                      K / 8 <= kQuantMaxVecs * kQuantThreads;
  if (!gather) return quantize_act<kFp8>(attn.transpose(1, 2).reshape({M, K}).contiguous(), fn);
  const c10::cuda::CUDAGuard guard(attn.device());
  auto out = empty_quantized<kFp8>(M, K, attn);
  if (M == 0) return out;
  auto run = [&](auto kernel) {
    kernels::pdl::launch(kernel, dim3(static_cast<unsigned>(M)), dim3(kQuantThreads), 0,
                         at::cuda::getCurrentCUDAStream(),
                         reinterpret_cast<const __nv_bfloat16*>(attn.data_ptr()),
                         reinterpret_cast<typename ActQuant<kFp8>::Out*>(out.first.data_ptr()),
                         static_cast<float*>(out.second.data_ptr()), T, static_cast<int>(hd / 8),
                         static_cast<int>(K / 8), attn.stride(0), attn.stride(1), attn.stride(2));
  };
  with_held_vectors(K / 8, [&](auto v) { run(heads_quantize_kernel<kFp8, decltype(v)::value>); });
  return out;
}

template <bool kFp8>
std::pair<at::Tensor, at::Tensor> silu_mul_quantize(const at::Tensor& gu, const char* fn, int variant) {
  check_tensor(gu, fn, "gu", at::kBFloat16);
  TORCH_CHECK(gu.dim() == 2 && gu.size(1) % 2 == 0, fn, ": expected gu [M, 2I], got ", gu.sizes());
  const int64_t M = gu.size(0), I = gu.size(1) / 2;
  TORCH_CHECK(M <= INT32_MAX, fn, ": at most ", INT32_MAX, " rows, got ", M);
  if (!holds_rows(gu, I)) return quantize_act<kFp8>(kernels::silu_mul(gu), fn);
  const c10::cuda::CUDAGuard guard(gu.device());
  auto out = empty_quantized<kFp8>(M, I, gu);
  if (M == 0) return out;
  const int64_t i8 = I / 8;
  // Vectors per thread: the fewest that hold the row (i8 <= 2048, so 1024 threads need at most 2).
  auto launch = [&](auto threads) {
    constexpr int T = decltype(threads)::value;
    auto run = [&](auto kernel) {
      kernels::pdl::launch(kernel, dim3(static_cast<unsigned>(M)), dim3(T), 0,
                           at::cuda::getCurrentCUDAStream(), reinterpret_cast<const int4*>(gu.data_ptr()),
                           reinterpret_cast<typename ActQuant<kFp8>::Out*>(out.first.data_ptr()),
                           static_cast<float*>(out.second.data_ptr()), I);
    };
    if (i8 <= T) {
      run(silu_mul_quantize_kernel<kFp8, 1, T>);
    } else if (i8 <= 2 * T) {
      run(silu_mul_quantize_kernel<kFp8, 2, T>);
    } else if constexpr (T <= 512) {
      if (i8 <= 4 * T) {
        run(silu_mul_quantize_kernel<kFp8, 4, T>);
      } else if constexpr (T == 256) {
        run(silu_mul_quantize_kernel<kFp8, kQuantMaxVecs, T>);
      }
    }
  };
  // Default: the most threads a row can use (at most 2 vectors each). On an H200 at 2048 x 14336,
  // 1024 threads per row took 57.5 us, 512 60.6 us, 256 67.2 us; at one row 4.7, 5.2, 7.6 us
  // (bench/quant_bench, docs/benchmarks.md): the SiLU and the quantization are compute, and more
  // warps per row overlap them with the loads of other rows.
  int threads = variant;
  if (threads == 0) threads = i8 > 2 * 256 ? 1024 : i8 > 256 ? 512 : 256;
  TORCH_CHECK(threads == 256 || threads == 512 || threads == 1024, fn, ": variant must be 0, 256, 512 or 1024, got ",
              variant);
  if (threads == 1024) {
    launch(std::integral_constant<int, 1024>{});
  } else if (threads == 512) {
    launch(std::integral_constant<int, 512>{});
  } else {
    launch(std::integral_constant<int, 256>{});
  }
  return out;
}

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

// ---------------------------------------------------------------------------------------------
// Epilogue of _int_mm.

constexpr int kEpilogueThreads = 256;

__device__ __forceinline__ float scaled(int acc, float sx, float sw) {
  return __fmul_rn(__fmul_rn(__int2float_rn(acc), sx), sw);
}

__device__ __forceinline__ __nv_bfloat16 with_residual(__nv_bfloat16 out,
                                                       const __nv_bfloat16* residual, int64_t o) {
  if (residual == nullptr) return out;
  return __float2bfloat16_rn(__fadd_rn(__bfloat162float(residual[o]), __bfloat162float(out)));
}

// kVec: 8 outputs per thread (two 16-byte loads of acc, one 16-byte store), needs N % 8 == 0
// and 16-byte aligned acc / sw / residual / y. Grid-stride loop.
template <bool kVec>
__global__ void __launch_bounds__(kEpilogueThreads)
    scale_epilogue_kernel(const int* __restrict__ acc, const float* __restrict__ sx,
                          const float* __restrict__ sw, const __nv_bfloat16* __restrict__ residual,
                          __nv_bfloat16* __restrict__ y, int64_t M, int64_t N) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    const int64_t n8 = M * N / 8;
    for (int64_t t = start; t < n8; t += stride) {
      const int64_t e = t * 8, m = e / N, n = e - m * N;
      const int4 a0 = __ldg(reinterpret_cast<const int4*>(acc) + 2 * t);
      const int4 a1 = __ldg(reinterpret_cast<const int4*>(acc) + 2 * t + 1);
      const float4 w0 = __ldg(reinterpret_cast<const float4*>(sw + n));
      const float4 w1 = __ldg(reinterpret_cast<const float4*>(sw + n) + 1);
      const float s = __ldg(sx + m);
      __nv_bfloat16 out[8] = {
          __float2bfloat16_rn(scaled(a0.x, s, w0.x)), __float2bfloat16_rn(scaled(a0.y, s, w0.y)),
          __float2bfloat16_rn(scaled(a0.z, s, w0.z)), __float2bfloat16_rn(scaled(a0.w, s, w0.w)),
          __float2bfloat16_rn(scaled(a1.x, s, w1.x)), __float2bfloat16_rn(scaled(a1.y, s, w1.y)),
          __float2bfloat16_rn(scaled(a1.z, s, w1.z)), __float2bfloat16_rn(scaled(a1.w, s, w1.w))};
      if (residual != nullptr) {
        const int4 rv = __ldg(reinterpret_cast<const int4*>(residual) + t);
        const auto* r = reinterpret_cast<const __nv_bfloat16*>(&rv);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          out[j] = __float2bfloat16_rn(__fadd_rn(__bfloat162float(r[j]), __bfloat162float(out[j])));
        }
      }
      reinterpret_cast<int4*>(y)[t] = *reinterpret_cast<const int4*>(out);
    }
  } else {
    for (int64_t e = start; e < M * N; e += stride) {
      const int64_t m = e / N, n = e - m * N;
      y[e] = with_residual(__float2bfloat16_rn(scaled(acc[e], sx[m], sw[n])), residual, e);
    }
  }
}

}  // namespace

std::pair<at::Tensor, at::Tensor> quantize_act_int8(const at::Tensor& x) {
  return quantize_act<false>(x, "quantize_act_int8");
}

std::pair<at::Tensor, at::Tensor> quantize_act_fp8(const at::Tensor& x) {
  return quantize_act<true>(x, "quantize_act_fp8");
}

std::pair<at::Tensor, at::Tensor> rms_norm_quantize_act(const at::Tensor& x, const at::Tensor& w,
                                                        double eps, bool fp8) {
  return fp8 ? rms_norm_quantize<true>(x, w, eps, "rms_norm_quantize_act_fp8")
             : rms_norm_quantize<false>(x, w, eps, "rms_norm_quantize_act_int8");
}

std::pair<at::Tensor, at::Tensor> heads_quantize_act(const at::Tensor& attn, bool fp8) {
  return fp8 ? heads_quantize<true>(attn, "heads_quantize_act_fp8")
             : heads_quantize<false>(attn, "heads_quantize_act_int8");
}

std::pair<at::Tensor, at::Tensor> silu_mul_quantize_act(const at::Tensor& gu, bool fp8, int variant) {
  return fp8 ? silu_mul_quantize<true>(gu, "silu_mul_quantize_act_fp8", variant)
             : silu_mul_quantize<false>(gu, "silu_mul_quantize_act_int8", variant);
}

at::Tensor gemv_w8a8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                     const at::Tensor& sw, const at::Tensor* residual) {
  return gemv_a8<Int8Ops>(qx, sx, data, sw, residual, at::kChar, "gemv_w8a8");
}

at::Tensor gemv_fp8(const at::Tensor& qx, const at::Tensor& sx, const at::Tensor& data,
                    const at::Tensor& sw, const at::Tensor* residual) {
  return gemv_a8<Fp8Ops>(qx, sx, data, sw, residual, at::kFloat8_e4m3fn, "gemv_fp8");
}

at::Tensor scale_epilogue(const at::Tensor& acc, const at::Tensor& sx, const at::Tensor& sw,
                          const at::Tensor* residual) {
  constexpr const char* fn = "scale_epilogue";
  check_tensor(acc, fn, "acc", at::kInt);
  TORCH_CHECK(acc.dim() == 2, fn, ": acc must be [M, N], got ", acc.sizes());
  const int64_t M = acc.size(0), N = acc.size(1);
  check_scale(sx, M, fn, "sx", acc);
  check_scale(sw, N, fn, "sw", acc);
  check_residual(residual, M, N, fn, acc);
  const c10::cuda::CUDAGuard guard(acc.device());
  at::Tensor y = at::empty({M, N}, acc.options().dtype(at::kBFloat16));
  if (M * N == 0) return y;
  const bool vec = N % 8 == 0 && aligned16(acc) && aligned16(sw) && aligned16(y) &&
                   (residual == nullptr || aligned16(*residual));
  const int64_t work = vec ? M * N / 8 : M * N;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  // Enough blocks to fill the machine (8 per SM), grid-stride beyond that.
  const int64_t blocks = std::min((work + kEpilogueThreads - 1) / kEpilogueThreads, sms * 8);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto* ap = acc.data_ptr<int>();
  const float* sxp = sx.data_ptr<float>();
  const float* swp = sw.data_ptr<float>();
  auto* yp = reinterpret_cast<__nv_bfloat16*>(y.data_ptr());
  if (vec) {
    scale_epilogue_kernel<true><<<static_cast<unsigned>(blocks), kEpilogueThreads, 0, stream>>>(
        ap, sxp, swp, bf16_or_null(residual), yp, M, N);
  } else {
    scale_epilogue_kernel<false><<<static_cast<unsigned>(blocks), kEpilogueThreads, 0, stream>>>(
        ap, sxp, swp, bf16_or_null(residual), yp, M, N);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

}  // namespace jointnas::quant::cuda
