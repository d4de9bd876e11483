// The int8 weight-only GEMV (w8a16, per-channel scales; layout of pack.h, reference linear_ref in
// quantize.h). The GEMV design is in wo_gemv_cuda.h.
#include <cstdint>
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/wo_gemv_cuda.h"

namespace jointnas::quant::cuda {
namespace {

using namespace wo;

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
  gemv_prologue<M, R, U, false>(data, int64_t{k16} * 16, n_rows, xs, x, k8, x_stride);  // once per block
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
  float acc[R][M][P] = {};
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
        load_x8_rows<M, false>(x_chunk + 32 * u * kVecBytes / 8 * 9, x_stride, h, xf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float q[8];
          int8x4_to_float(word(wv[r][u], 2 * h), q);
          int8x4_to_float(word(wv[r][u], 2 * h + 1), q + 4);
          fma8_rows<M, P>(q, xf, acc[r]);
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

}  // namespace

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

}  // namespace jointnas::quant::cuda
