// Dequantization of the weight-only formats to [N, K] (bf16, half or fp32), bitwise equal to
// dequantize_ref (quantize.h): the large-M path of QuantLinear (dequantize, then cuBLAS).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/wo_common_cuda.h"

namespace jointnas::quant::cuda {
namespace {

using namespace wo;

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
// Host side: launch configuration.

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
