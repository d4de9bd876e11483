// Device-side pieces of the Llama block's row operations, shared by the fused kernels
// (fused_cuda.cu) and the producers that hand a quantized-activation linear its input already
// quantized (quant/quantizing_producers_cuda.cu). Both must round at the same points, so that the fused
// producer is bitwise the unfused pair: RMSNorm rounds the normalized value to the compute dtype
// before the weight product; SiLU rounds its output before the product with up.
#pragma once

namespace jointnas::kernels {

constexpr int kRowThreads = 256;  // threads per row block of RMSNorm and the producers

// Sum of `v` over the kRowThreads threads of the block (warp shuffles, then shared memory); every
// thread gets the total. The order of the additions is fixed by the thread layout, so two kernels
// that give each thread the same elements in the same order get the same bits.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kRowThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffff, v, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < kRowThreads / 32 ? partial[threadIdx.x] : 0.f;
    for (int off = 16; off > 0; off >>= 1) t += __shfl_xor_sync(0xffffffff, t, off);
    if (threadIdx.x == 0) partial[0] = t;
  }
  __syncthreads();
  return partial[0];
}

// w * cast(x * rstd): one element of RMSNorm's output.
template <typename T>
__device__ __forceinline__ T rms_norm_element(float x, float rstd, float w) {
  const T n = static_cast<T>(x * rstd);
  return static_cast<T>(w * static_cast<float>(n));
}

// cast(silu(g)) * u: one element of SiLU(gate) * up. The division is the fast one (__fdividef,
// 2 ulp of fp32, far under the bf16 rounding that follows): an IEEE division here and another in
// the quantizer made the quantizing producer compute-bound. It returns 0 where 1 + e^-g lies in
// (2^126, 2^128), g in about [-88.7, -87.3], whose true SiLU is below 1e-36 in magnitude.
template <typename T>
__device__ __forceinline__ T silu_mul_element(float g, float u) {
  const T act = static_cast<T>(__fdividef(g, 1.f + __expf(-g)));
  return static_cast<T>(static_cast<float>(act) * u);
}

}  // namespace jointnas::kernels
