// Split-K decode attention. Pass 1: block (b*nkv + h, chunk) of 4 warps; warp w takes keys
// chunk*64 + w, +4, ... up to pos, keeps an online softmax (max m, sum l, acc[hd]) per query head
// and writes it as one "part". Pass 2: one block per (b, h, g) merges the parts:
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
template <typename T, int G, int EPL>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    decode_attn_partial(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const int64_t* __restrict__ pos, float* __restrict__ parts, int64_t L,
                        int n_parts, float scale) {
  pdl::wait();
  pdl::launch_dependents();
  constexpr int kMaxG = G, kMaxEpl = EPL, hd = EPL * 32;
  const int bh = blockIdx.x, chunk = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  constexpr int epl = EPL;
  const int64_t valid = pos[0] + 1;
  const int part = chunk * kWarpsPerBlock + warp;
  float* out = parts + (static_cast<int64_t>(bh) * n_parts + part) * G * (hd + 2);
  float qr[kMaxG][kMaxEpl], acc[kMaxG][kMaxEpl], m[kMaxG], l[kMaxG];
#pragma unroll
  for (int g = 0; g < kMaxG; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxEpl; ++e) {
      acc[g][e] = 0.f;
      qr[g][e] = (g < G && e < epl) ? static_cast<float>(q[(static_cast<int64_t>(bh) * G + g) * hd + e * 32 + lane]) * scale : 0.f;
    }
  }
  const T* kb = k + static_cast<int64_t>(bh) * L * hd;
  const T* vb = v + static_cast<int64_t>(bh) * L * hd;
  // The warp's keys j0, j0 + 4, ... in batches of kBatch whose K/V rows are all requested before
  // the first is used: a chain of 16 dependent load round trips per warp became 4 (same order of
  // keys, same result).
  constexpr int kBatch = 4;
  const int64_t j_end = min(valid, static_cast<int64_t>(chunk + 1) * kChunk);
  for (int64_t jb = static_cast<int64_t>(chunk) * kChunk + warp; jb < j_end; jb += kBatch * kWarpsPerBlock) {
    T kraw[kBatch][kMaxEpl], vraw[kBatch][kMaxEpl];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t j = jb + b * kWarpsPerBlock;
#pragma unroll
      for (int e = 0; e < kMaxEpl; ++e) {
        if (j < j_end) {
          kraw[b][e] = kb[j * hd + e * 32 + lane];
          vraw[b][e] = vb[j * hd + e * 32 + lane];
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      if (jb + b * kWarpsPerBlock >= j_end) break;  // warp-uniform
      float kr[kMaxEpl], vr[kMaxEpl];
#pragma unroll
      for (int e = 0; e < kMaxEpl; ++e) {
        kr[e] = e < epl ? static_cast<float>(kraw[b][e]) : 0.f;
        vr[e] = e < epl ? static_cast<float>(vraw[b][e]) : 0.f;
      }
#pragma unroll
      for (int g = 0; g < kMaxG; ++g) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < kMaxEpl; ++e) s = fmaf(qr[g][e], kr[e], s);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
        const float m_new = fmaxf(m[g], s);
        const float corr = __expf(m[g] - m_new), p = __expf(s - m_new);
        l[g] = l[g] * corr + p;
#pragma unroll
        for (int e = 0; e < kMaxEpl; ++e) acc[g][e] = acc[g][e] * corr + p * vr[e];
        m[g] = m_new;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float* o = out + g * (hd + 2);
#pragma unroll
    for (int e = 0; e < kMaxEpl; ++e) {
      if (e < epl) o[e * 32 + lane] = acc[g][e];
    }
    if (lane == 0) {
      o[hd] = m[g];
      o[hd + 1] = l[g];
    }
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
  at::Tensor parts = at::empty({B * nkv, n_parts, G, hd + 2}, q.options().dtype(at::kFloat));
  at::Tensor y = at::empty_like(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>(B * nkv), n_chunks);
  auto run = [&](auto tag, auto g_c, auto epl_c) {
    using T = decltype(tag);
    constexpr int Gc = decltype(g_c)::value, E = decltype(epl_c)::value;
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
