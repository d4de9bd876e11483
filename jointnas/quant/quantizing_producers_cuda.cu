// Producers that quantize their own output per token (the input of a w8a8 / fp8 linear):
// rms_norm_quantize_act, silu_mul_quantize_act, and heads_quantize_act for the attention output
// read through its strides.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "jointnas/kernels/fused.h"
#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/rowops_cuda.h"
#include "jointnas/quant/act_quant_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/vec_cuda.h"

namespace jointnas::quant::cuda {
namespace {

using namespace aq;

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

}  // namespace

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

}  // namespace jointnas::quant::cuda
