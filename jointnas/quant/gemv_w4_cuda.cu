// The int4 weight-only GEMV (w4a16, grouped asymmetric; layout of pack.h, reference linear_ref in
// quantize.h): the register-staged kernel and gemv_w4a16, which picks it or the tensor-core kernel
// (gemv_w4_tc_cuda.cu) by M and shape. The GEMV design is in wo_gemv_cuda.h.
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
// w4a16 GEMV. A 16-byte vector holds 32 nibbles = 32 columns of one group. Per lane and chunk:
// R x U vectors + R x U (scale, zero) pairs in flight; then per 8-column word: x from shared
// memory for each row of x (shared by the R weight rows), 2 instructions per nibble for (q - z),
// M FFMAs. kF32X stages x as fp32 (M = 1, K small enough): no bf16 -> fp32 conversion per use.
template <int M, int R, int U, bool kF32X>
__global__ void __launch_bounds__(kThreads, kMinBlocks<M>)
    gemv_w4_kernel(const int4* __restrict__ data,               // [N, K / 32] vectors of 32 nibbles
                   const uint16_t* __restrict__ scale,          // [N, G] bf16 bits
                   const uint8_t* __restrict__ zero,            // [N, G]
                   const int4* __restrict__ x,                  // [M, K / 8] vectors of 8 bf16
                   __nv_bfloat16* __restrict__ y,               // [M, N]
                   const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                   int n_rows, int k32, int groups, FastDiv vecs_per_group, int x_stride) {
  constexpr int kVecBytes = 32 * (kF32X ? 4 : 2);  // x bytes of one weight vector
  extern __shared__ int4 xs_[];                    // M rows of x_stride bytes (stage_x)
  char* xs = reinterpret_cast<char*>(xs_);
  const int k8 = k32 * 4;
  const int lane = threadIdx.x & 31;
  // x is staged once per block; each warp then loops over row groups (a persistent grid of
  // about one wave), so that the staging and the block start are paid once per SM slot rather
  // than once per 2 KB of weights.
  gemv_prologue<M, R, U, kF32X>(data, int64_t{k32} * 16, n_rows, xs, x, k8, x_stride);
  for (int rg = blockIdx.x * kWarps + (threadIdx.x >> 5); rg * R < n_rows; rg += gridDim.x * kWarps) {
  const int row0 = rg * R;
  const int4* wr[R];
  // row * G: scale / zero index of the row's first group (N * G < 2^31). Unsigned 32-bit
  // indices make each scale / zero address one IMAD.WIDE.U32 off the base pointer.
  uint32_t sz_row[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end re-read the last row (results discarded): no branches in the loop.
    const int row = min(row0 + r, n_rows - 1);
    wr[r] = data + static_cast<int64_t>(row) * k32;
    sz_row[r] = static_cast<uint32_t>(row * groups);
  }
  // Two partial sums per row at M = 1 so that the FFMA chains are not latency-bound.
  constexpr int P = M == 1 ? 2 : 1;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  const char* x_lane = xs + pad128(lane * kVecBytes);

  // One chunk: R x U vectors per lane from column vector `base` on. kFull (every vector inside
  // the row, the common case) drops the per-vector bounds checks.
  auto chunk = [&](int base, auto full) {
    constexpr bool kFull = decltype(full)::value;
    // base * kVecBytes is a multiple of 1024: its padded offset is exactly 9/8 of it.
    const char* x_chunk = x_lane + base * kVecBytes / 8 * 9;
    int4 wv[R][U];
    uint32_t sv[R][U], zv[R][U];
    const uint32_t v0 = static_cast<uint32_t>(base + lane);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const uint32_t v = v0 + 32 * u;
      const uint32_t g = vecs_per_group.div(v);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        // Past the row's end nothing is loaded (and nothing is read: see below).
        if (kFull || v < static_cast<uint32_t>(k32)) {
          wv[r][u] = __ldg(wr[r] + v0 + 32 * u);
          sv[r][u] = __ldg(scale + (sz_row[r] + g));
          zv[r][u] = __ldg(zero + (sz_row[r] + g));
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (!kFull && base + lane + 32 * u >= k32) continue;
      float cz[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) zero_consts(zv[r][u], cz[r]);
      float p[R][M][P] = {};
#pragma unroll
      for (int c = 0; c < 4; ++c) {  // 8 columns per 32-bit word
        float xf[M][8];
        load_x8_rows<M, kF32X>(x_chunk + 32 * u * kVecBytes / 8 * 9, x_stride, c, xf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float q[8];
          nibbles_minus_zero(word(wv[r][u], c), cz[r], q);
          fma8_rows<M, P>(q, xf, p[r]);
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
  };
  for (int base = 0; base < k32; base += 32 * U) {
    if (base + 32 * U <= k32) {
      chunk(base, std::true_type{});
    } else {
      chunk(base, std::false_type{});
    }
  }
  float one[R];
#pragma unroll
  for (int r = 0; r < R; ++r) one[r] = 1.f;  // the group scales are already applied
  reduce_store<M, R>(acc, one, lane, row0, n_rows, y, residual);
  }
}

// The arguments of gemv_w4_kernel; x staged with x_bytes per value.
template <typename Kernel>
void launch_w4_kernel(Kernel kernel, unsigned blocks, size_t smem, const at::Tensor& x,
                      const at::Tensor& data, const at::Tensor& scale, const at::Tensor& zero,
                      int64_t group, const at::Tensor* residual, at::Tensor& y, int64_t x_bytes) {
  const int64_t N = data.size(0), K = x.size(1);
  kernels::pdl::launch(
      kernel, dim3(blocks), dim3(kThreads), smem, at::cuda::getCurrentCUDAStream(),
      reinterpret_cast<const int4*>(data.data_ptr()),
      reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.const_data_ptr<uint8_t>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), static_cast<int>(N), static_cast<int>(K / 32),
      static_cast<int>(K / group), FastDiv(static_cast<uint32_t>(group / 32)),
      static_cast<int>(x_row_bytes(K, x_bytes)));
}

template <int M, int R, int U, bool kF32X = false>
void launch_w4(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
               const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y) {
  const int64_t N = data.size(0), K = x.size(1);
  auto kernel = gemv_w4_kernel<M, R, U, kF32X>;
  const size_t smem =
      gemv_smem("gemv_w4a16", reinterpret_cast<const void*>(kernel), M, K, kF32X ? 4 : 2);
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, R);
  launch_w4_kernel(kernel, blocks, smem, x, data, scale, zero, group, residual, y, kF32X ? 4 : 2);
}

}  // namespace

at::Tensor gemv_w4a16(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                      const at::Tensor& zero, int64_t group, const at::Tensor* residual,
                      int variant) {
  constexpr const char* fn = "gemv_w4a16";
  check_cuda_matrix(fn, "data", data);
  const c10::Device device = data.device();
  const int64_t N = data.size(0), K = data.size(1) * 2;
  TORCH_CHECK(K > 0 && K % 32 == 0, fn,
              ": expected K > 0 and K % 32 == 0 (16-byte vectors of 32 int4), got K = ", K);
  TORCH_CHECK(group > 0 && group % 32 == 0 && K % group == 0, fn,
              ": expected a group that is a multiple of 32 and divides K = ", K, ", got ", group);
  TORCH_CHECK(
      N < (int64_t{1} << 30) && K < (int64_t{1} << 31) && N * (K / group) < (int64_t{1} << 31), fn,
      ": N = ", N, ", K = ", K, ", group = ", group, " exceed 32-bit indexing");
  check_tensor(fn, "data", data, at::kByte, {N, K / 2}, device);
  check_aligned(fn, "data", data, 16);
  check_tensor(fn, "scale", scale, at::kBFloat16, {N, K / group}, device);
  check_tensor(fn, "zero", zero, at::kByte, {N, K / group}, device);
  const int64_t M = check_gemv_x(fn, x, K, device);
  residual = check_residual(fn, residual, M, N, device);
  const c10::cuda::CUDAGuard guard(device);
  if (variant >= 100) {  // tensor cores (benchmarks): its own shared-memory layout of x
    if (M > 1 && w4_tc_smem_bytes(M, K) > smem_limit()) {
      return split_rows(x, residual, [&](const at::Tensor& xh, const at::Tensor* rh) {
        return gemv_w4a16(xh, data, scale, zero, group, rh, variant);
      });
    }
    at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
    if (N > 0) gemv_w4_tc(x, data, scale, zero, group, residual, y, variant);
    return y;
  }
  if (M > 1 && static_cast<size_t>(M * x_row_bytes(K, 2)) > smem_limit()) {
    return split_rows(x, residual, [&](const at::Tensor& xh, const at::Tensor* rh) {
      return gemv_w4a16(xh, data, scale, zero, group, rh);
    });
  }
  at::Tensor y = at::empty({M, N}, x.options());  // [M, N] bf16
  if (N == 0) return y;
  // R = 2 rows x U = 4 vectors per lane: 8 x 16 B (256 weights) in flight per lane, and N / 2
  // warps (2048 for N = 4096) to fill the GPU. The kernel is close to issue-bound (~3.9
  // instructions per weight at M = 1 against 0.5 bytes), so the x work per weight matters: at
  // M = 1 x is staged as fp32 when K <= 16384 (no conversions; 2 LDS.128 per 8 columns shared
  // by the 2 rows); at M >= 3 the FFMAs dominate and 4 rows halve the per-weight x work again
  // (U = 2 keeps registers in check).
  if (M == 1 && variant != 0) {
    TORCH_CHECK(x_row_bytes(K, 4) <= 72 * 1024, fn, ": variants need K <= 16384");
    switch (variant) {
      case 14: launch_w4<1, 1, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 18: launch_w4<1, 1, 8, true>(x, data, scale, zero, group, residual, y); break;
      case 24: launch_w4<1, 2, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 42: launch_w4<1, 4, 2, true>(x, data, scale, zero, group, residual, y); break;
      case 44: launch_w4<1, 4, 4, true>(x, data, scale, zero, group, residual, y); break;
      case 81: launch_w4<1, 8, 1, true>(x, data, scale, zero, group, residual, y); break;
      case 82: launch_w4<1, 8, 2, true>(x, data, scale, zero, group, residual, y); break;
      default: TORCH_CHECK(false, fn, ": unknown variant ", variant);
    }
    return y;
  }
  switch (M) {
    case 1:
      // Tensor cores where they measured faster in a CUDA graph (docs/benchmarks.md, H200): 2 warps
      // per 16-row tile for tall matrices with short rows (14336x4096: 13.0 us against 15.1 us),
      // 8 for long rows (4096x14336: 13.3 us against 14.2 us). Elsewhere the register-staged
      // kernel (4096x4096: 5.2 us against 5.8 us; 1024x4096: 2.8 us against 3.2 us).
      if (group % 128 == 0 && ((N >= 8192 && K <= 4096) || K >= 8192) &&
          w4_tc_smem_bytes(1, K) <= smem_limit()) {
        gemv_w4_tc(x, data, scale, zero, group, residual, y, K >= 8192 ? 100 : 102);
      } else if (x_row_bytes(K, 4) <= 72 * 1024) {
        launch_w4<1, 2, 4, true>(x, data, scale, zero, group, residual, y);
      } else {
        launch_w4<1, 2, 4>(x, data, scale, zero, group, residual, y);
      }
      break;
    case 2:
      launch_w4<2, 2, 4>(x, data, scale, zero, group, residual, y);
      break;
    case 3:
      launch_w4<3, 4, 2>(x, data, scale, zero, group, residual, y);
      break;
    default:
      launch_w4<4, 4, 2>(x, data, scale, zero, group, residual, y);
      break;
  }
  return y;
}

}  // namespace jointnas::quant::cuda
