// Decode attention. Caches of up to 32 W keys (W = 16 warps, 8 at G = 8): one block per (b, kv
// head) over every valid key, warps merged in shared memory (decode_attn_single). Longer caches:
// split-K. Pass 1: block (b*nkv + h, chunk) of 4 warps; warp w takes keys chunk*64 + w, +4, ...
// up to pos, keeps an online softmax (max m, sum l, acc[hd]) per query head and writes it as one
// "part". Pass 2: one block per (b, h, g) merges the parts:
// out = sum_p acc_p e^(m_p - M) / sum_p l_p e^(m_p - M). Each lane owns hd/32 elements of a row,
// so a key row is one coalesced 2*hd-byte read per warp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include "jointnas/kernels/pdl_cuda.h"

#include <cfloat>
#include <type_traits>

namespace jointnas::kernels {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kChunk = 64;  // keys per block

// G query heads per KV head and EPL = hd / 32 elements per lane are compile-time constants: with
// run-time bounds the per-lane arrays went to local memory (255 registers + a 336-byte stack frame
// in the first version, 1.5x slower than the masked SDPA it replaced).
// One warp's online softmax over its keys j0, j0 + stride, ... < j_end: running max m, sum l and
// acc[hd] per query head. The K/V rows of kBatch keys are all requested before the first is used
// (a chain of 16 dependent load round trips per warp became 4).
template <typename T, int G, int EPL>
__device__ __forceinline__ void warp_attend(const float (&qr)[G][EPL], const T* __restrict__ kb,
                                            const T* __restrict__ vb, int64_t j0, int64_t j_end,
                                            int stride, int lane, float (&acc)[G][EPL], float (&m)[G],
                                            float (&l)[G]) {
  constexpr int hd = EPL * 32, kBatch = 4;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[g][e] = 0.f;
  }
  for (int64_t jb = j0; jb < j_end; jb += kBatch * stride) {
    T kraw[kBatch][EPL], vraw[kBatch][EPL];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t j = jb + b * stride;
#pragma unroll
      for (int e = 0; e < EPL; ++e) {
        if (j < j_end) {
          kraw[b][e] = kb[j * hd + e * 32 + lane];
          vraw[b][e] = vb[j * hd + e * 32 + lane];
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      if (jb + b * stride >= j_end) break;  // warp-uniform
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) s = fmaf(qr[g][e], static_cast<float>(kraw[b][e]), s);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
        const float m_new = fmaxf(m[g], s);
        const float corr = __expf(m[g] - m_new), p = __expf(s - m_new);
        l[g] = l[g] * corr + p;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = acc[g][e] * corr + p * static_cast<float>(vraw[b][e]);
        m[g] = m_new;
      }
    }
  }
}

// q of head (bh, g) times scale, the lane's EPL elements.
template <typename T, int G, int EPL>
__device__ __forceinline__ void load_q(const T* __restrict__ q, int bh, int lane, float scale,
                                       float (&qr)[G][EPL]) {
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int e = 0; e < EPL; ++e) {
      qr[g][e] = static_cast<float>(q[(static_cast<int64_t>(bh) * G + g) * EPL * 32 + e * 32 + lane]) * scale;
    }
  }
}

template <typename T, int G, int EPL>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    decode_attn_partial(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const int64_t* __restrict__ pos, float* __restrict__ parts, int64_t L,
                        int n_parts, float scale) {
  pdl::wait();
  pdl::launch_dependents();
  constexpr int hd = EPL * 32;
  const int bh = blockIdx.x, chunk = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t valid = pos[0] + 1;
  const int part = chunk * kWarpsPerBlock + warp;
  float* out = parts + (static_cast<int64_t>(bh) * n_parts + part) * G * (hd + 2);
  float qr[G][EPL], acc[G][EPL], m[G], l[G];
  load_q<T, G, EPL>(q, bh, lane, scale, qr);
  const T* kb = k + static_cast<int64_t>(bh) * L * hd;
  const T* vb = v + static_cast<int64_t>(bh) * L * hd;
  warp_attend<T, G, EPL>(qr, kb, vb, static_cast<int64_t>(chunk) * kChunk + warp,
                         min(valid, static_cast<int64_t>(chunk + 1) * kChunk), kWarpsPerBlock, lane, acc, m, l);
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float* o = out + g * (hd + 2);
#pragma unroll
    for (int e = 0; e < EPL; ++e) o[e * 32 + lane] = acc[g][e];
    if (lane == 0) {
      o[hd] = m[g];
      o[hd + 1] = l[g];
    }
  }
}

// Short caches (L <= 32 W keys): one block of W warps per (b, kv head) attends to every valid key
// and merges its warps' statistics in shared memory, so no combine kernel follows (one launch
// fewer per block of the decode step, and no round trip through global memory).
template <int G>
inline constexpr int kSingleWarps = G <= 4 ? 16 : 8;  // shared memory: W x G x (hd + 2) floats <= 33 KB

template <typename T, int G, int EPL>
__global__ void __launch_bounds__(kSingleWarps<G> * 32)
    decode_attn_single(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const int64_t* __restrict__ pos, T* __restrict__ y, int64_t L, float scale) {
  pdl::wait();
  pdl::launch_dependents();
  constexpr int hd = EPL * 32, W = kSingleWarps<G>;
  __shared__ float st[W][G][hd + 2];
  const int bh = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float qr[G][EPL], acc[G][EPL], m[G], l[G];
  load_q<T, G, EPL>(q, bh, lane, scale, qr);
  warp_attend<T, G, EPL>(qr, k + static_cast<int64_t>(bh) * L * hd, v + static_cast<int64_t>(bh) * L * hd,
                         warp, pos[0] + 1, W, lane, acc, m, l);
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int e = 0; e < EPL; ++e) st[warp][g][e * 32 + lane] = acc[g][e];
    if (lane == 0) {
      st[warp][g][hd] = m[g];
      st[warp][g][hd + 1] = l[g];
    }
  }
  __syncthreads();
  // As decode_attn_combine, over the W warps of this block.
  for (int i = threadIdx.x; i < G * hd; i += W * 32) {
    const int g = i / hd, d = i % hd;
    float M = -FLT_MAX;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, st[w][g][hd]);
    float denom = 0.f, num = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      if (st[w][g][hd + 1] == 0.f) continue;  // a warp that saw no key
      const float e = __expf(st[w][g][hd] - M);
      denom += st[w][g][hd + 1] * e;
      num += st[w][g][d] * e;
    }
    y[(static_cast<int64_t>(bh) * G + g) * hd + d] = static_cast<T>(num / denom);
  }
}

template <typename T>
__global__ void decode_attn_combine(const float* __restrict__ parts, T* __restrict__ y, int G, int hd,
                                    int n_parts) {
  pdl::wait();
  pdl::launch_dependents();
  const int bhg = blockIdx.x;  // (b * nkv + h) * G + g
  const int bh = bhg / G, g = bhg % G;
  const float* base = parts + static_cast<int64_t>(bh) * n_parts * G * (hd + 2) + g * (hd + 2);
  const int64_t stride = static_cast<int64_t>(G) * (hd + 2);
  float M = -FLT_MAX;
  // Unrolled so that the parts' loads are in flight together rather than one round trip each.
#pragma unroll 8
  for (int p = 0; p < n_parts; ++p) M = fmaxf(M, base[p * stride + hd]);
  float denom = 0.f, num = 0.f;
#pragma unroll 8
  for (int p = 0; p < n_parts; ++p) {
    const float* part = base + p * stride;
    if (part[hd + 1] == 0.f) continue;  // a warp that saw no key
    const float w = __expf(part[hd] - M);
    denom += part[hd + 1] * w;
    if (threadIdx.x < hd) num += part[threadIdx.x] * w;
  }
  if (threadIdx.x < hd) y[static_cast<int64_t>(bhg) * hd + threadIdx.x] = static_cast<T>(num / denom);
}

}  // namespace

at::Tensor decode_attention_cuda(const at::Tensor& q_in, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& pos, double scale) {
  TORCH_CHECK(q_in.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes() && k.is_contiguous() &&
                  v.is_contiguous(),
              "decode_attention: q [B, nkv, G, hd] and contiguous caches [B, nkv, L, hd] expected");
  TORCH_CHECK(pos.is_cuda() && pos.scalar_type() == at::kLong && pos.numel() == 1,
              "decode_attention: pos must be int64 [1] on the device");
  at::Tensor q = q_in.contiguous();
  const int64_t B = q.size(0), nkv = q.size(1), G = q.size(2), hd = q.size(3), L = k.size(2);
  TORCH_CHECK((hd == 64 || hd == 128) && (G <= 4 || G == 8), "decode_attention: hd ", hd, " G ", G,
              " not instantiated (hd 64/128, G 1-4 or 8)");
  const int n_chunks = static_cast<int>((L + kChunk - 1) / kChunk);
  const int n_parts = n_chunks * kWarpsPerBlock;
  at::Tensor y = at::empty_like(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>(B * nkv), n_chunks);
  auto run = [&](auto tag, auto g_c, auto epl_c) {
    using T = decltype(tag);
    constexpr int Gc = decltype(g_c)::value, E = decltype(epl_c)::value;
    if (L <= 32 * kSingleWarps<Gc>) {
      pdl::launch(decode_attn_single<T, Gc, E>, dim3(static_cast<unsigned>(B * nkv)),
                  dim3(kSingleWarps<Gc> * 32), 0, stream, reinterpret_cast<const T*>(q.data_ptr()),
                  reinterpret_cast<const T*>(k.data_ptr()), reinterpret_cast<const T*>(v.data_ptr()),
                  pos.const_data_ptr<int64_t>(), reinterpret_cast<T*>(y.data_ptr()), L,
                  static_cast<float>(scale));
      return;
    }
    at::Tensor parts = at::empty({B * nkv, n_parts, G, hd + 2}, q.options().dtype(at::kFloat));
    pdl::launch(decode_attn_partial<T, Gc, E>, grid, dim3(kWarpsPerBlock * 32), 0, stream,
                reinterpret_cast<const T*>(q.data_ptr()), reinterpret_cast<const T*>(k.data_ptr()),
                reinterpret_cast<const T*>(v.data_ptr()), pos.const_data_ptr<int64_t>(),
                parts.data_ptr<float>(), L, n_parts, static_cast<float>(scale));
    pdl::launch(decode_attn_combine<T>, dim3(static_cast<unsigned>(B * nkv * G)),
                dim3(static_cast<unsigned>(hd)), 0, stream, parts.const_data_ptr<float>(),
                reinterpret_cast<T*>(y.data_ptr()), static_cast<int>(G), static_cast<int>(hd), n_parts);
  };
  auto by_shape = [&](auto tag) {
    using IC1 = std::integral_constant<int, 1>;
    using IC2 = std::integral_constant<int, 2>;
    using IC3 = std::integral_constant<int, 3>;
    using IC4 = std::integral_constant<int, 4>;
    using IC8 = std::integral_constant<int, 8>;
    auto with_g = [&](auto epl_c) {
      switch (G) {
        case 1: run(tag, IC1{}, epl_c); break;
        case 2: run(tag, IC2{}, epl_c); break;
        case 3: run(tag, IC3{}, epl_c); break;
        case 4: run(tag, IC4{}, epl_c); break;
        case 8: run(tag, IC8{}, epl_c); break;
        default: TORCH_CHECK(false, "decode_attention: G = ", G, " not instantiated");
      }
    };
    if (hd == 64) {
      with_g(IC2{});
    } else {
      with_g(IC4{});
    }
  };
  switch (q.scalar_type()) {
    case at::kBFloat16: by_shape(c10::BFloat16{}); break;
    case at::kHalf: by_shape(c10::Half{}); break;
    case at::kFloat: by_shape(float{}); break;
    default: TORCH_CHECK(false, "decode_attention: dtype ", q.scalar_type(), " not supported");
  }
  return y;
}

}  // namespace jointnas::kernels
