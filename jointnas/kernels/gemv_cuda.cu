// Decode GEMV, y[n] = sum_k W[n, k] x[k], bf16 in and out, fp32 accumulation (as cuBLAS).
// Memory-bound: W is read exactly once, so the kernel is built for bytes in flight: x is staged
// in shared memory, each warp owns R rows and issues R x U independent 16-byte loads per lane
// before using any of them, 8 warps per block. Launched programmatically (pdl_cuda.h): the first
// chunk of weights is prefetched to L2 before the wait for the previous kernel.
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

#include "jointnas/kernels/pdl_cuda.h"

namespace jointnas::kernels {
namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ float dot8(const int4& a, const int4& b) {
  const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 fa = __bfloat1622float2(pa[j]);
    const float2 fb = __bfloat1622float2(pb[j]);
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}

// R rows per warp, U 16-byte loads per row issued before use: R * U * 512 bytes in flight per warp.
// OutT: bf16, or float for logits (the fp32 sum unrounded; no residual then).
template <int R, int U, typename OutT>
__global__ void __launch_bounds__(kWarps * 32) gemv_bf16_kernel(const int4* __restrict__ w,
                                                                const int4* __restrict__ x,
                                                                OutT* __restrict__ y,
                                                                const __nv_bfloat16* __restrict__ residual,
                                                                int64_t n_rows, int64_t k8) {
  extern __shared__ int4 xs[];  // k8 vectors of 8 bf16
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * R;
  const int4* wr[R];
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end re-read the last row (results discarded): no branches in the loop.
    wr[r] = w + min(row0 + r, n_rows - 1) * k8;
    acc[r] = 0.f;
  }
  // The weights do not depend on the previous kernel: their first chunk (R x U x 512 bytes per
  // warp, 128-byte lines spread over the lanes) is on its way to L2 while that kernel finishes.
  pdl::prefetch_rows<R>(w, k8 * 16, row0, n_rows, U * 4, lane);
  pdl::wait();
  pdl::launch_dependents();
  // x to shared memory with up to kStage loads per thread in flight: as a plain loop the loads went
  // out one round trip at a time, 7 in a row for the down projection's 28 KB before any weight was
  // used.
  constexpr int kStage = 8;
  for (int64_t base = threadIdx.x; base < k8; base += kStage * kWarps * 32) {
    int4 t[kStage];
#pragma unroll
    for (int u = 0; u < kStage; ++u) {
      if (base + u * kWarps * 32 < k8) t[u] = x[base + u * kWarps * 32];
    }
#pragma unroll
    for (int u = 0; u < kStage; ++u) {
      if (base + u * kWarps * 32 < k8) xs[base + u * kWarps * 32] = t[u];
    }
  }
  __syncthreads();
  if (row0 >= n_rows) return;
  int64_t i = lane;
  for (; i + (U - 1) * 32 < k8; i += U * 32) {
    int4 v[R][U];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < U; ++u) v[r][u] = __ldg(wr[r] + i + u * 32);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int4 xv = xs[i + u * 32];
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] += dot8(v[r][u], xv);
    }
  }
  for (; i < k8; i += 32) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] += dot8(__ldg(wr[r] + i), xs[i]);
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffff, acc[r], off);
    if (lane == 0 && row0 + r < n_rows) {
      if constexpr (std::is_same_v<OutT, float>) {
        y[row0 + r] = acc[r];
      } else {
        // With a residual: r + bf16(W x), rounded like the unfused `x + linear(...)` (two roundings).
        const __nv_bfloat16 out = __float2bfloat16(acc[r]);
        y[row0 + r] = residual == nullptr
                          ? out
                          : __float2bfloat16(__bfloat162float(residual[row0 + r]) + __bfloat162float(out));
      }
    }
  }
}

template <int R, int U, typename OutT>
void launch_out(const at::Tensor& x, const at::Tensor& w, at::Tensor& y, const at::Tensor* residual,
                int64_t N, int64_t K) {
  const size_t smem = static_cast<size_t>(K) * 2;
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(gemv_bf16_kernel<R, U, OutT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const int64_t blocks = (N + kWarps * R - 1) / (kWarps * R);
  pdl::launch(gemv_bf16_kernel<R, U, OutT>, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32), smem,
              at::cuda::getCurrentCUDAStream(), reinterpret_cast<const int4*>(w.data_ptr()),
              reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<OutT*>(y.data_ptr()),
              residual != nullptr ? reinterpret_cast<const __nv_bfloat16*>(residual->data_ptr()) : nullptr,
              N, K / 8);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <int R, int U>
void launch(const at::Tensor& x, const at::Tensor& w, at::Tensor& y, const at::Tensor* residual,
            int64_t N, int64_t K) {
  if (y.scalar_type() == at::kFloat) {
    launch_out<R, U, float>(x, w, y, residual, N, K);
  } else {
    launch_out<R, U, __nv_bfloat16>(x, w, y, residual, N, K);
  }
}

}  // namespace

at::Tensor gemv_bf16_cuda(const at::Tensor& x_in, const at::Tensor& w, int variant,
                          const at::Tensor* residual, bool fp32_out) {
  TORCH_CHECK(!(fp32_out && residual != nullptr), "gemv_bf16: an fp32 output takes no residual");
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.scalar_type() == at::kBFloat16 && w.is_cuda(),
              "gemv_bf16: w must be a contiguous bf16 CUDA matrix [N, K], got ", w.sizes());
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(K % 8 == 0, "gemv_bf16: K = ", K, " must be a multiple of 8 (16-byte loads)");
  TORCH_CHECK(x_in.numel() == K && x_in.scalar_type() == at::kBFloat16 && x_in.is_cuda(),
              "gemv_bf16: x must hold K = ", K, " bf16 values on the device, got ", x_in.sizes());
  at::Tensor x = x_in.reshape({K}).contiguous();
  at::Tensor y = at::empty({N}, w.options().dtype(fp32_out ? at::kFloat : at::kBFloat16));
  if (N == 0) return y;
  at::Tensor res_c;
  const at::Tensor* res = nullptr;
  if (residual != nullptr) {
    TORCH_CHECK(residual->numel() == N && residual->scalar_type() == at::kBFloat16 && residual->is_cuda(),
                "gemv_bf16: residual must hold N = ", N, " bf16 values on the device");
    res_c = residual->reshape({N}).contiguous();
    res = &res_c;
  }
  TORCH_CHECK(K * 2 <= 200 * 1024, "gemv_bf16: K = ", K, " too large for shared memory");
  // variant: 0 = heuristic; else R * 10 + U (benchmarks compare them, bench/linear_bench.cpp).
  int v = variant;
  // Default from bench/linear_bench on an H200 (docs/benchmarks.md): 4 rows per warp pays off
  // for tall matrices with short rows (gate_up, lm_head); 1 row x 4 loads elsewhere.
  if (v == 0) v = (N >= 14336 && K <= 4096) ? 42 : 14;
  switch (v) {
    case 14: launch<1, 4>(x, w, y, res, N, K); break;
    case 18: launch<1, 8>(x, w, y, res, N, K); break;
    case 24: launch<2, 4>(x, w, y, res, N, K); break;
    case 42: launch<4, 2>(x, w, y, res, N, K); break;
    case 44: launch<4, 4>(x, w, y, res, N, K); break;
    default: TORCH_CHECK(false, "gemv_bf16: unknown variant ", variant);
  }
  return y;
}

}  // namespace jointnas::kernels
