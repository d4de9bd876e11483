// The int4 weight-only GEMV on the tensor cores (w4a16, M = 1..4; variants >= 100 of gemv_w4a16,
// and its default at M = 1 for the shapes where it measured faster: gemv_w4_cuda.cu). Bitwise
// the same numbers as linear_ref up to the fp32 summation order (tests/quant/wo_kernels_cuda_test.cpp).
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/staging_cuda.h"
#include "jointnas/quant/wo_gemv_cuda.h"

namespace jointnas::quant::cuda::wo {
namespace {

// ---------------------------------------------------------------------------------------------
// w4a16 GEMV on the tensor cores (variant >= 100, M = 1..4), Marlin-style: one
// mma.sync.m16n8k16 (bf16 in, fp32 accumulate) multiplies a 16-row x 16-k tile of the weight
// (A, exact (q - z) in bf16) by a 16-k x 8 tile of x^T (B: column m = row m of x; columns >= M
// are don't-care and never stored), C [16 x 8] fp32.
//
// Fragments (lane = 4 gid + tid): A a0 = (row gid, k 2tid..2tid+1), a1 = (row gid+8, same k),
// a2 = (row gid, k 2tid+8..+9), a3 = (row gid+8, same k); B b0 = (k 2tid..2tid+1, col gid),
// b1 = (k 2tid+8..+9, col gid); C c0, c1 = (row gid, cols 2tid, 2tid+1), c2, c3 = (row gid+8,
// same cols). A lane's A and B elements carry the same 4 logical k (2tid, 2tid+1, 2tid+8,
// 2tid+9) and the sum over k is order-free, so every lane may map its 4 logical k to any 4
// physical columns of its own, as long as the 4 lanes of one gid use disjoint columns, rows gid and
// gid+8 use the same columns, and B uses the same ones: lane tid's k are columns of a 32-bit
// word (8 nibbles) that lane tid loaded from rows gid and gid+8.
//
// Per word w (columns 8c..8c+7, nibble j = column 8c+j): LOP3 (w >> 4s) & 0x000F000F | 0x43004300
// gives the bf16 pair (128 + q_s, 128 + q_{s+4}) exactly (128 + q < 256 has step 1 in bf16); one
// bf16x2 FMA with (1, 1) and -(128 + z) makes it (q - z) exactly. Shifts 0, 4 feed a0 / a2 (a1 /
// a3 from the row gid+8 word) of one k-step, shifts 8, 12 the next: a word feeds 2 k-steps, pairs
// (0,4), (1,5) then (2,6), (3,7). x is staged in shared memory in that order: per 8 columns the
// bf16x2 pairs (c0,c4), (c1,c5), (c2,c6), (c3,c7) (16 bytes: b0, b1 of both k-steps, one LDS.128).
//
// A chunk is 4 x Wd words of a row: lane tid loads Wd words (16, 8 or 4 bytes) at word tid * Wd
// of it, from rows gid and gid + 8; one chunk = 2 Wd k-steps of the warp. The 4 lanes of a gid
// share an mma, so a chunk (32 Wd columns) must lie in one group: Wd = 4 needs g % 128 == 0, 2
// needs g % 64, 1 g % 32. Per chunk C starts at 0 and the group's fp32 scale applies once per row:
// acc = fma(s, C, acc). A warp owns 16 rows (a tile) and each lane keeps 2 x U chunk loads (plus
// their scale / zero) in flight; `ks` warps of a block split the chunks of one tile
// (interleaved by U chunks) and reduce through shared memory, so short rows (K = 4096: 2 KB) still
// give every warp a full U chunks of loads; the grid is persistent over tiles.
constexpr int kTcRedBytes = 2 * kWarps * 32 * 16;  // double-buffered float4 per lane

// Shared-memory x row of the tensor-core GEMV: 16 bytes per 8 columns, 16 bytes of padding after
// every 64 (the 4 lanes of a gid read 64 bytes apart at Wd = 4: without it, 2-way conflicts),
// rows 64 bytes past a multiple of 128 apart (gid pairs in one 8-lane phase read rows m, m + 1).
inline int64_t tc_x_row_bytes(int64_t K) {
  const int64_t b = (K / 8 + K / 32) * 16;
  return (b + 127) / 128 * 128 + 64;
}

// (w >> kShift) & 0x000F000F | 0x43004300: the bf16 pair (128 + nibble kShift/4, 128 + nibble
// kShift/4 + 4), low half first.
template <int kShift>
__device__ __forceinline__ uint32_t nibble_pair_bf16(uint32_t w) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w >> kShift), "n"(0x000F000F), "n"(0x43004300));
  return d;
}

// a * (1, 1) + nz with nz = (-(128 + z), -(128 + z)): (q - z) in both halves, exact.
__device__ __forceinline__ uint32_t bf16x2_add_one(uint32_t a, uint32_t nz) {
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(0x3F803F80u), "r"(nz));
  return d;
}

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                               uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Wd words (4 Wd bytes) of packed weights as one global load.
template <int Wd>
__device__ __forceinline__ void load_words(const uint32_t* __restrict__ p, uint32_t (&w)[Wd]) {
  if constexpr (Wd == 4) {
    const int4 v = __ldg(reinterpret_cast<const int4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (Wd == 2) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = __ldg(p);
  }
}

template <int Wd, int U>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_w4_tc_kernel(const uint32_t* __restrict__ data,           // [N, K / 8] words of 8 nibbles
                      const uint16_t* __restrict__ scale,          // [N, G] bf16 bits
                      const uint8_t* __restrict__ zero,            // [N, G]
                      const int4* __restrict__ x,                  // [M, K / 8] vectors of 8 bf16
                      __nv_bfloat16* __restrict__ y,               // [M, N]
                      const __nv_bfloat16* __restrict__ residual,  // [M, N] or null
                      int n_rows, int M, int k8, int groups, FastDiv chunks_per_group, int ks,
                      int x_stride) {
  constexpr int kChunkWords = 4 * Wd;  // words of one row per chunk (4 lanes x Wd)
  extern __shared__ int4 smem_[];
  char* smem = reinterpret_cast<char*>(smem_);
  float4* red = reinterpret_cast<float4*>(smem);  // [2][kWarps][32] partial sums (ks > 1)
  char* xs = smem + kTcRedBytes;                  // M rows of x_stride bytes, permuted x

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = lane >> 2, tid = lane & 3;
  const int slot = warp / ks, kpart = warp - slot * ks;  // tile slot of the block, K part
  const int tiles_per_block = kWarps / ks;
  const int n_tiles = (n_rows + 15) / 16;
  const int n_chunks = k8 / kChunkWords;
  // Launched programmatically (pdl_cuda.h): the weights do not depend on the previous kernel, so
  // each lane's first U chunks of its two rows go to L2 before the wait for it.
  if (const int tile0 = static_cast<int>(blockIdx.x) * tiles_per_block + slot; tile0 < n_tiles) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = min(tile0 * 16 + gid + 8 * h, n_rows - 1);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = kpart * U + u;
        if (c < n_chunks) kernels::pdl::prefetch_l2(data + static_cast<int64_t>(row) * k8 + tid * Wd + c * kChunkWords);
      }
    }
  }
  kernels::pdl::wait();
  kernels::pdl::launch_dependents();

  // Stage x: per 8 columns c0..c7 (words (c0,c1), (c2,c3), (c4,c5), (c6,c7)) the bf16 pairs
  // (c0,c4), (c1,c5), (c2,c6), (c3,c7), at padded offset 16 (w + w / 4).
  kernels::load_staged<kThreads>(x, M * k8, [&](int i, const int4& v) {
    const int m = i / k8, w = i - m * k8;
    const uint32_t w0 = v.x, w1 = v.y, w2 = v.z, w3 = v.w;
    *reinterpret_cast<int4*>(xs + m * x_stride + 16 * (w + (w >> 2))) =
        make_int4(__byte_perm(w0, w2, 0x5410), __byte_perm(w0, w2, 0x7632),
                  __byte_perm(w1, w3, 0x5410), __byte_perm(w1, w3, 0x7632));
  });
  __syncthreads();
  // B column gid = row gid of x; columns >= M read row M - 1 (finite, never stored).
  // Word i of lane tid in chunk c: padded offset 16 (c 5 Wd + tid Wd + i + (tid Wd) / 4).
  const char* x_lane = xs + min(gid, M - 1) * x_stride + 16 * (tid * Wd + ((tid * Wd) >> 2));

  int iter = 0;
  // Block-uniform trip count (the reduction's barrier); slots past the last tile idle.
  for (int bt = blockIdx.x; bt * tiles_per_block < n_tiles; bt += gridDim.x, ++iter) {
    const int tile = bt * tiles_per_block + slot;
    const bool valid = tile < n_tiles;
    const int n0 = tile * 16;
    // Rows past the end re-read the last row (results not stored).
    const int rows[2] = {min(n0 + gid, n_rows - 1), min(n0 + gid + 8, n_rows - 1)};
    const uint32_t* wp[2];
    uint32_t sz_row[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      wp[h] = data + static_cast<int64_t>(rows[h]) * k8 + tid * Wd;
      sz_row[h] = static_cast<uint32_t>(rows[h] * groups);
    }
    const int my_chunks = valid ? n_chunks : 0;  // warp-uniform, as every guard below
    float acc[4] = {0.f, 0.f, 0.f, 0.f};

    auto chunk = [&](int base, auto full) {
      constexpr bool kFull = decltype(full)::value;
      uint32_t wv[2][U][Wd];
      uint32_t sv[2][U], zv[2][U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = base + u;
        if (kFull || c < my_chunks) {
          const uint32_t grp = chunks_per_group.div(static_cast<uint32_t>(c));
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            load_words<Wd>(wp[h] + c * kChunkWords, wv[h][u]);
            sv[h][u] = __ldg(scale + (sz_row[h] + grp));
            zv[h][u] = __ldg(zero + (sz_row[h] + grp));
          }
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = base + u;
        if (!kFull && c >= my_chunks) continue;
        const char* xc = x_lane + c * (80 * Wd);
        uint32_t nz[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) nz[h] = 0xC300C300u | (zv[h][u] * 0x00010001u);
        float cf[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < Wd; ++i) {
          const int4 b = *reinterpret_cast<const int4*>(xc + 16 * i);
          const uint32_t lo = wv[0][u][i], hi = wv[1][u][i];  // rows gid, gid + 8
          mma_bf16_16816(cf, bf16x2_add_one(nibble_pair_bf16<0>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<0>(hi), nz[1]),
                         bf16x2_add_one(nibble_pair_bf16<4>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<4>(hi), nz[1]), b.x, b.y);
          mma_bf16_16816(cf, bf16x2_add_one(nibble_pair_bf16<8>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<8>(hi), nz[1]),
                         bf16x2_add_one(nibble_pair_bf16<12>(lo), nz[0]),
                         bf16x2_add_one(nibble_pair_bf16<12>(hi), nz[1]), b.z, b.w);
        }
        const float s0 = as_float(sv[0][u] << 16), s1 = as_float(sv[1][u] << 16);
        acc[0] = fmaf(s0, cf[0], acc[0]);
        acc[1] = fmaf(s0, cf[1], acc[1]);
        acc[2] = fmaf(s1, cf[2], acc[2]);
        acc[3] = fmaf(s1, cf[3], acc[3]);
      }
    };
#pragma unroll 1
    for (int base = kpart * U; base < my_chunks; base += ks * U) {
      if (base + U <= my_chunks) {
        chunk(base, std::true_type{});
      } else {
        chunk(base, std::false_type{});
      }
    }

    if (ks > 1) {
      float4* buf = red + (iter & 1) * (kWarps * 32);
      buf[warp * 32 + lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      // Double buffer: a warp writes this buffer again two iterations on, i.e. after the next
      // barrier, which every reader of this iteration passes only after reading.
      __syncthreads();
      if (kpart == 0) {
        acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
#pragma unroll 1
        for (int j = 0; j < ks; ++j) {
          const float4 p = buf[(slot * ks + j) * 32 + lane];
          acc[0] += p.x, acc[1] += p.y, acc[2] += p.z, acc[3] += p.w;
        }
      }
    }
    if (kpart == 0 && valid) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = n0 + gid + 8 * h;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int m = 2 * tid + j;
          if (row < n_rows && m < M) {
            const int64_t i = static_cast<int64_t>(m) * n_rows + row;
            const __nv_bfloat16 out = __float2bfloat16_rn(acc[2 * h + j]);
            y[i] = residual == nullptr
                       ? out
                       : __float2bfloat16_rn(__bfloat162float(residual[i]) + __bfloat162float(out));
          }
        }
      }
    }
  }
}

// Tensor-core w4 GEMV (gemv_w4_tc_kernel): Wd words per lane and chunk, U chunks in flight (2 U
// loads of 4 Wd bytes per lane, ~128 bytes); `ks` warps per 16-row tile.
template <int Wd, int U>
void launch_w4_tc(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                  const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y,
                  int ks) {
  const int64_t N = data.size(0), K = x.size(1), M = x.size(0);
  auto kernel = gemv_w4_tc_kernel<Wd, U>;
  const int64_t x_stride = tc_x_row_bytes(K);
  const size_t smem = static_cast<size_t>(kTcRedBytes + M * x_stride);
  TORCH_CHECK(smem <= smem_limit(), "gemv_w4a16: x [", M, ", ", K, "] needs ", smem,
              " bytes of shared memory (tensor-core variant), the device allows ", smem_limit());
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  if (ks == 0) {
    // Auto: as many warps per tile (<= 8) as leave each a full U chunks of one row.
    const int64_t n_chunks = K / (32 * Wd);
    ks = kWarps;
    while (ks > 1 && static_cast<int64_t>(ks) * U > n_chunks) ks /= 2;
  }
  // A block covers kWarps / ks tiles of 16 rows: 16 / ks rows per warp.
  const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), smem, N, 16 / ks);
  kernels::pdl::launch(
      kernel, dim3(blocks), dim3(kThreads), smem, at::cuda::getCurrentCUDAStream(),
      reinterpret_cast<const uint32_t*>(data.data_ptr()),
      reinterpret_cast<const uint16_t*>(scale.data_ptr()), zero.const_data_ptr<uint8_t>(),
      reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<__nv_bfloat16*>(y.data_ptr()),
      bf16_ptr(residual), static_cast<int>(N), static_cast<int>(M), static_cast<int>(K / 8),
      static_cast<int>(K / group), FastDiv(static_cast<uint32_t>(group / (32 * Wd))), ks,
      static_cast<int>(x_stride));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

size_t w4_tc_smem_bytes(int64_t M, int64_t K) { return static_cast<size_t>(kTcRedBytes + M * tc_x_row_bytes(K)); }

// Variant 100 (auto warps per tile) or 101 / 102 / 104 / 108 (1, 2, 4, 8 warps per tile); the
// load width follows the group: 16 bytes per lane when g % 128 == 0, 8 at g % 64, else 4.
void gemv_w4_tc(const at::Tensor& x, const at::Tensor& data, const at::Tensor& scale,
                const at::Tensor& zero, int64_t group, const at::Tensor* residual, at::Tensor& y,
                int variant) {
  const int ks = variant == 100 ? 0 : variant - 100;
  TORCH_CHECK(ks == 0 || ks == 1 || ks == 2 || ks == 4 || ks == 8,
              "gemv_w4a16: unknown variant ", variant);
  if (group % 128 == 0) {
    launch_w4_tc<4, 4>(x, data, scale, zero, group, residual, y, ks);
  } else if (group % 64 == 0) {
    launch_w4_tc<2, 6>(x, data, scale, zero, group, residual, y, ks);
  } else {
    launch_w4_tc<1, 8>(x, data, scale, zero, group, residual, y, ks);
  }
}

}  // namespace jointnas::quant::cuda::wo
