// The epilogue of torch's _int_mm for w8a8 at large M: acc [M, N] int32 -> bf16(float(acc) * sx *
// sw) (+ residual), the rounding of the GEMV epilogue (gemv_a8_cuda.cu).
#include <algorithm>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include "jointnas/quant/aq_common_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"

namespace jointnas::quant::cuda {
namespace {

using namespace aq;

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
