// Split-K decode attention. Pass 1: block (b*nkv + h, chunk) of 4 warps; warp w takes keys
// chunk*64 + w, +4, ... up to pos, keeps an online softmax (max m, sum l, acc[hd]) per query head
// and writes it as one "part". Pass 2: one block per (b, h, g) merges the parts:
// out = sum_p acc_p e^(m_p - M) / sum_p l_p e^(m_p - M). Each lane owns hd/32 elements of a row,
// so a key row is one coalesced 2*hd-byte read per warp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <cfloat>

namespace jointnas::kernels {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kChunk = 64;   // keys per block
constexpr int kMaxG = 8;     // query heads per KV head
constexpr int kMaxEpl = 8;   // hd / 32 elements per lane (hd <= 256)

template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    decode_attn_partial(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const int64_t* __restrict__ pos, float* __restrict__ parts, int G, int hd,
                        int64_t L, int n_parts, float scale) {
  const int bh = blockIdx.x, chunk = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int epl = hd / 32;
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
  for (int64_t j = static_cast<int64_t>(chunk) * kChunk + warp; j < min(valid, static_cast<int64_t>(chunk + 1) * kChunk);
       j += kWarpsPerBlock) {
    float kr[kMaxEpl], vr[kMaxEpl];
#pragma unroll
    for (int e = 0; e < kMaxEpl; ++e) {
      kr[e] = e < epl ? static_cast<float>(kb[j * hd + e * 32 + lane]) : 0.f;
      vr[e] = e < epl ? static_cast<float>(vb[j * hd + e * 32 + lane]) : 0.f;
    }
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) {
      if (g >= G) break;
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
  const int bhg = blockIdx.x;  // (b * nkv + h) * G + g
  const int bh = bhg / G, g = bhg % G;
  const float* base = parts + static_cast<int64_t>(bh) * n_parts * G * (hd + 2) + g * (hd + 2);
  const int64_t stride = static_cast<int64_t>(G) * (hd + 2);
  float M = -FLT_MAX;
  for (int p = 0; p < n_parts; ++p) M = fmaxf(M, base[p * stride + hd]);
  float denom = 0.f, num = 0.f;
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
  TORCH_CHECK(hd % 32 == 0 && hd <= 32 * kMaxEpl && G <= kMaxG, "decode_attention: hd ", hd, " G ", G,
              " unsupported");
  const int n_chunks = static_cast<int>((L + kChunk - 1) / kChunk);
  const int n_parts = n_chunks * kWarpsPerBlock;
  at::Tensor parts = at::empty({B * nkv, n_parts, G, hd + 2}, q.options().dtype(at::kFloat));
  at::Tensor y = at::empty_like(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, q.scalar_type(), "decode_attention", [&] {
    decode_attn_partial<scalar_t><<<dim3(static_cast<unsigned>(B * nkv), n_chunks), kWarpsPerBlock * 32, 0, stream>>>(
        q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), pos.data_ptr<int64_t>(),
        parts.data_ptr<float>(), static_cast<int>(G), static_cast<int>(hd), L, n_parts,
        static_cast<float>(scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    decode_attn_combine<scalar_t><<<static_cast<unsigned>(B * nkv * G), static_cast<unsigned>(std::max<int64_t>(hd, 32)), 0, stream>>>(
        parts.data_ptr<float>(), y.data_ptr<scalar_t>(), static_cast<int>(G), static_cast<int>(hd), n_parts);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

}  // namespace jointnas::kernels
