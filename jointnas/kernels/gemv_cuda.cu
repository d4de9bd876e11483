// Decode GEMV, y[n] = sum_k W[n, k] x[k], bf16 in and out, fp32 accumulation (as cuBLAS).
// Memory-bound: W is read exactly once, so the kernel is built for bytes in flight: x is staged
// in shared memory, each warp owns one row and issues 4 independent 16-byte loads per lane before
// using any of them (2 KB per warp in flight), 8 warps per block.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

namespace jointnas::kernels {
namespace {

constexpr int kWarps = 8;
constexpr int kUnroll = 4;

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

__global__ void __launch_bounds__(kWarps * 32) gemv_bf16_kernel(const int4* __restrict__ w,
                                                                const int4* __restrict__ x,
                                                                __nv_bfloat16* __restrict__ y,
                                                                int64_t n_rows, int64_t k8) {
  extern __shared__ int4 xs[];  // k8 vectors of 8 bf16
  for (int64_t i = threadIdx.x; i < k8; i += blockDim.x) xs[i] = x[i];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= n_rows) return;
  const int4* wr = w + row * k8;
  float acc = 0.f;
  int64_t i = lane;
  // Main loop: kUnroll loads issued back to back, then the math.
  for (; i + (kUnroll - 1) * 32 < k8; i += kUnroll * 32) {
    int4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = __ldg(wr + i + u * 32);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc += dot8(v[u], xs[i + u * 32]);
  }
  for (; i < k8; i += 32) acc += dot8(__ldg(wr + i), xs[i]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffff, acc, off);
  if (lane == 0) y[row] = __float2bfloat16(acc);
}

}  // namespace

at::Tensor gemv_bf16_cuda(const at::Tensor& x_in, const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.scalar_type() == at::kBFloat16 && w.is_cuda(),
              "gemv_bf16: w must be a contiguous bf16 CUDA matrix [N, K], got ", w.sizes());
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(K % 8 == 0, "gemv_bf16: K = ", K, " must be a multiple of 8 (16-byte loads)");
  TORCH_CHECK(x_in.numel() == K && x_in.scalar_type() == at::kBFloat16 && x_in.is_cuda(),
              "gemv_bf16: x must hold K = ", K, " bf16 values on the device, got ", x_in.sizes());
  at::Tensor x = x_in.reshape({K}).contiguous();
  at::Tensor y = at::empty({N}, w.options());
  if (N == 0) return y;
  const size_t smem = static_cast<size_t>(K) * 2;
  TORCH_CHECK(smem <= 200 * 1024, "gemv_bf16: K = ", K, " too large for shared memory");
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(gemv_bf16_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  const int64_t blocks = (N + kWarps - 1) / kWarps;
  gemv_bf16_kernel<<<static_cast<unsigned>(blocks), kWarps * 32, smem, at::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const int4*>(w.data_ptr()), reinterpret_cast<const int4*>(x.data_ptr()),
      reinterpret_cast<__nv_bfloat16*>(y.data_ptr()), N, K / 8);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

}  // namespace jointnas::kernels
