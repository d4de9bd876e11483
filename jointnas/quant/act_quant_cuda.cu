// Per-token activation quantization (quantize_act_int8 / quantize_act_fp8): one block per row of
// x; see act_quant_cuda.h.
#include <cstdint>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/quant/act_quant_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/vec_cuda.h"

namespace jointnas::quant::cuda::aq {
namespace {

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

}  // namespace

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

template std::pair<at::Tensor, at::Tensor> quantize_act<false>(const at::Tensor& x, const char* fn);
template std::pair<at::Tensor, at::Tensor> quantize_act<true>(const at::Tensor& x, const char* fn);

}  // namespace jointnas::quant::cuda::aq

namespace jointnas::quant::cuda {

std::pair<at::Tensor, at::Tensor> quantize_act_int8(const at::Tensor& x) {
  return aq::quantize_act<false>(x, "quantize_act_int8");
}

std::pair<at::Tensor, at::Tensor> quantize_act_fp8(const at::Tensor& x) {
  return aq::quantize_act<true>(x, "quantize_act_fp8");
}

}  // namespace jointnas::quant::cuda
