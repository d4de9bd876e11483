// Fused weight mixing of the factorized supernet linear (mixed_linear.cpp) on CUDA: for a chunk of
// weight rows, W_mix = sum_f p_f bf16(FQ_f(W)) in one pass over W, each FQ_f with exactly the
// numbers of quant::fake_quant (weight_grid's scales: IEEE division, scales rounded up to their
// storage dtype, round-half-even, e4m3 RNE), and in the backward pass the per-row sums
// s[n, f] = sum_k G[n, k] bf16(FQ_f(W))[n, k] b[k] that give every architecture gradient.
// The ATen path does the same in ~15 fp32 passes per format; this reads W once.
//
// One block of 256 threads per row; each thread holds 8 contiguous elements per 2048-wide slice
// (K <= 16384, K % 8 == 0), so a group of 32 / 64 / 128 columns lives in 4 / 8 / 16 adjacent lanes
// of one warp: group min / max are warp shuffles, row amax a block reduction.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "jointnas/search/mix_cuda.h"

namespace jointnas::search::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;
constexpr int kSlice = kThreads * kVec;  // 2048 columns per slice
constexpr int kMaxSlices = 8;            // K <= 16384

__device__ float block_max(float v, float* smem) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float r = smem[0];
  for (int i = 1; i < kThreads / 32; ++i) r = fmaxf(r, smem[i]);
  return r;
}

__device__ float block_sum(float v, float* smem) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float r = 0;
  for (int i = 0; i < kThreads / 32; ++i) r += smem[i];
  return r;
}

// Scale of a symmetric per-row format, as weight_grid: fp32 amax / qmax, rounded up (to the next
// fp32) if the stored scale times qmax falls short of amax in double; 0 -> 1.
__device__ float sym_scale(float amax, float qmax) {
  float s = __fdiv_rn(amax, qmax);
  if (static_cast<double>(s) * qmax < static_cast<double>(amax)) s = nextafterf(s, INFINITY);
  return s == 0.0f ? 1.0f : s;
}

__device__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// The next bf16 above a positive bf16 value x.
__device__ float bf16_next_up(float x) {
  __nv_bfloat16 b = __float2bfloat16_rn(x);
  unsigned short bits = *reinterpret_cast<unsigned short*>(&b);
  bits += 1;
  return __bfloat162float(*reinterpret_cast<__nv_bfloat16*>(&bits));
}

// kSlices = ceil(K / 2048) at compile time, so that the row lives in registers (a runtime bound
// made every thread hold 8 slices and spill).
template <int kSlices>
__global__ void mix_kernel(const __nv_bfloat16* __restrict__ w, int64_t K, MixSpec spec,
                           const float* __restrict__ p, const __nv_bfloat16* __restrict__ g,
                           const float* __restrict__ b, __nv_bfloat16* __restrict__ out,
                           float* __restrict__ sums, const float* __restrict__ row_scale,
                           const float* __restrict__ col_scale, bool times_g) {
  __shared__ float smem[kThreads / 32];
  const int64_t row = blockIdx.x;
  constexpr int slices = kSlices;
  float v[kSlices][kVec];
  float mix[kSlices][kVec];
  float amax = 0.0f;
#pragma unroll
  for (int s = 0; s < kSlices; ++s) {
    const int64_t c0 = static_cast<int64_t>(s) * kSlice + threadIdx.x * kVec;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      v[s][j] = 0.0f;
      mix[s][j] = 0.0f;
    }
    if (s < slices && c0 < K) {
      const uint4 raw = *reinterpret_cast<const uint4*>(w + row * K + c0);
      const __nv_bfloat16* e = reinterpret_cast<const __nv_bfloat16*>(&raw);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        v[s][j] = __bfloat162float(e[j]);
        amax = fmaxf(amax, fabsf(v[s][j]));
      }
    }
  }
  amax = block_max(amax, smem);
  for (int f = 0; f < spec.num_formats; ++f) {
    const MixFormat& fm = spec.formats[f];
    const float pf = p[f];
    float part = 0.0f;  // sum over this thread's columns of G * fq * b
    const float row_scale = fm.kind == kMixSymInt || fm.kind == kMixFp8 ? sym_scale(amax, fm.qmax) : 1.0f;
#pragma unroll
    for (int s = 0; s < kSlices; ++s) {
      const int64_t c0 = static_cast<int64_t>(s) * kSlice + threadIdx.x * kVec;
      const bool live = s < slices && c0 < K;
      float scale = row_scale, zero = 0.0f;
      if (fm.kind == kMixAsymInt) {
        // Group min / max over group / 8 adjacent lanes (every lane takes part in the shuffles).
        float mn = 0.0f, mx = 0.0f;
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          mn = fminf(mn, v[s][j]);
          mx = fmaxf(mx, v[s][j]);
        }
        for (int o = 1; o < fm.group / kVec; o <<= 1) {
          mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        }
        const double span = static_cast<double>(mx) - static_cast<double>(mn);
        float st = round_bf16(__fdiv_rn(mx - mn, fm.qmax));
        if (static_cast<double>(st) * fm.qmax < span) st = bf16_next_up(st);
        if (st == 0.0f) st = 1.0f;
        scale = st;
        zero = fminf(fmaxf(rintf(__fdiv_rn(-mn, st)), 0.0f), fm.qmax);
      }
      if (!live) continue;
      float gv[kVec], bv[kVec];
      if (g != nullptr) {
        const uint4 raw = *reinterpret_cast<const uint4*>(g + row * K + c0);
        const __nv_bfloat16* e = reinterpret_cast<const __nv_bfloat16*>(&raw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          gv[j] = __bfloat162float(e[j]);
          bv[j] = b[c0 + j];
        }
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        float fq = v[s][j];
        if (fm.kind == kMixSymInt || fm.kind == kMixAsymInt) {
          const float t = __fdiv_rn(v[s][j], scale);
          fq = (fminf(fmaxf(rintf(t) + zero, static_cast<float>(fm.qmin)), fm.qmax) - zero) * scale;
        } else if (fm.kind == kMixFp8) {
          const float t = fminf(fmaxf(__fdiv_rn(v[s][j], scale), -448.0f), 448.0f);
          fq = static_cast<float>(__nv_fp8_e4m3(t)) * scale;
        }
        fq = round_bf16(fq);  // fake_quant returns the weight's dtype
        mix[s][j] += pf * fq;
        if (g != nullptr) part += gv[j] * fq * bv[j];
      }
    }
    if (sums != nullptr) {
      const float total = block_sum(part, smem);
      if (threadIdx.x == 0) sums[row * spec.num_formats + f] = total;
    }
  }
  const float rs = row_scale != nullptr ? row_scale[row] : 1.0f;
#pragma unroll
  for (int s = 0; s < kSlices; ++s) {
    const int64_t c0 = static_cast<int64_t>(s) * kSlice + threadIdx.x * kVec;
    if (s < slices && c0 < K) {
      float m[kVec];
#pragma unroll
      for (int j = 0; j < kVec; ++j) m[j] = mix[s][j] * rs;
      if (times_g) {
        const uint4 graw = *reinterpret_cast<const uint4*>(g + row * K + c0);
        const __nv_bfloat16* ge = reinterpret_cast<const __nv_bfloat16*>(&graw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) m[j] *= __bfloat162float(ge[j]);
      }
      if (col_scale != nullptr) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) m[j] *= col_scale[c0 + j];
      }
      uint4 raw;
      __nv_bfloat16* e = reinterpret_cast<__nv_bfloat16*>(&raw);
#pragma unroll
      for (int j = 0; j < kVec; ++j) e[j] = __float2bfloat16_rn(m[j]);
      *reinterpret_cast<uint4*>(out + row * K + c0) = raw;
    }
  }
}

// One thread per 8 elements of a row (K % 8 == 0), grid-stride.
template <bool kFp8>
__global__ void dequant_act_kernel(const uint8_t* __restrict__ q, const float* __restrict__ scale,
                                   __nv_bfloat16* __restrict__ out, int64_t T, int64_t K) {
  const int64_t n8 = T * K / kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < n8; v += stride) {
    const float s = scale[(v * kVec) / K];
    const uint2 raw = reinterpret_cast<const uint2*>(q)[v];
    const uint8_t* e = reinterpret_cast<const uint8_t*>(&raw);
    uint4 o;
    __nv_bfloat16* oe = reinterpret_cast<__nv_bfloat16*>(&o);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      float x;
      if constexpr (kFp8) {
        __nv_fp8_e4m3 f;
        f.__x = e[j];
        x = static_cast<float>(f);
      } else {
        x = static_cast<float>(static_cast<int8_t>(e[j]));
      }
      oe[j] = __float2bfloat16_rn(__fmul_rn(x, s));
    }
    reinterpret_cast<uint4*>(out)[v] = o;
  }
}

}  // namespace

at::Tensor mix_weights(const at::Tensor& w, const MixSpec& spec, const at::Tensor& p,
                       const at::Tensor* g, const at::Tensor* b, at::Tensor* sums, const MixOutput& os) {
  TORCH_CHECK(w.is_cuda() && w.scalar_type() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous(),
              "mix_weights: w must be a contiguous bf16 CUDA matrix");
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(K % kVec == 0 && K <= int64_t{kSlice} * kMaxSlices, "mix_weights: K = ", K,
              " must be a multiple of 8 and <= ", kSlice * kMaxSlices);
  TORCH_CHECK(spec.num_formats >= 1 && spec.num_formats <= kMaxMixFormats, "mix_weights: 1..", kMaxMixFormats, " formats");
  for (int f = 0; f < spec.num_formats; ++f) {
    const MixFormat& fm = spec.formats[f];
    TORCH_CHECK(fm.kind != kMixAsymInt || (fm.group % 32 == 0 && fm.group <= 128 && K % fm.group == 0),
                "mix_weights: group ", fm.group, " must be 32, 64 or 128 and divide K");
  }
  TORCH_CHECK(reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0, "mix_weights: w must be 16-byte aligned");
  const c10::cuda::CUDAGuard guard(w.device());
  at::Tensor pf = p.to(at::kFloat).contiguous();
  at::Tensor out = at::empty_like(w);
  at::Tensor gc, bf;
  if (g != nullptr) {
    gc = g->contiguous();
    TORCH_CHECK(gc.sizes() == w.sizes() && gc.scalar_type() == at::kBFloat16 &&
                    reinterpret_cast<uintptr_t>(gc.data_ptr()) % 16 == 0,
                "mix_weights: G like W (bf16, 16-byte aligned)");
    bf = b->to(at::kFloat).contiguous();
    *sums = at::empty({N, spec.num_formats}, w.options().dtype(at::kFloat));
  }
  TORCH_CHECK(!os.times_g || g != nullptr, "mix_weights: times_g needs G");
  at::Tensor rs, cs;
  if (os.row_scale != nullptr) {
    rs = os.row_scale->to(at::kFloat).contiguous();
    TORCH_CHECK(rs.numel() == N && rs.is_cuda(), "mix_weights: row_scale must have N entries");
  }
  if (os.col_scale != nullptr) {
    cs = os.col_scale->to(at::kFloat).contiguous();
    TORCH_CHECK(cs.numel() == K && cs.is_cuda(), "mix_weights: col_scale must have K entries");
  }
  if (N == 0) return out;
  const auto* wp = reinterpret_cast<const __nv_bfloat16*>(w.data_ptr());
  const auto* gp = g != nullptr ? reinterpret_cast<const __nv_bfloat16*>(gc.data_ptr()) : nullptr;
  const float* bp = g != nullptr ? bf.data_ptr<float>() : nullptr;
  auto* op = reinterpret_cast<__nv_bfloat16*>(out.data_ptr());
  float* sp = g != nullptr ? sums->data_ptr<float>() : nullptr;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const unsigned grid = static_cast<unsigned>(N);
  switch ((K + kSlice - 1) / kSlice) {
#define JNAS_MIX_CASE(S) \
    case S: mix_kernel<S><<<grid, kThreads, 0, stream>>>(wp, K, spec, pf.data_ptr<float>(), gp, bp, op, sp, \
        rs.defined() ? rs.data_ptr<float>() : nullptr, cs.defined() ? cs.data_ptr<float>() : nullptr, os.times_g); break;
    JNAS_MIX_CASE(1) JNAS_MIX_CASE(2) JNAS_MIX_CASE(3) JNAS_MIX_CASE(4)
    JNAS_MIX_CASE(5) JNAS_MIX_CASE(6) JNAS_MIX_CASE(7) JNAS_MIX_CASE(8)
#undef JNAS_MIX_CASE
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor dequantize_act_bf16(const at::Tensor& q, const at::Tensor& scale) {
  const bool fp8 = q.scalar_type() == at::kFloat8_e4m3fn;
  TORCH_CHECK(q.is_cuda() && q.dim() == 2 && q.is_contiguous() && (fp8 || q.scalar_type() == at::kChar),
              "dequantize_act_bf16: q must be a contiguous int8 or e4m3 CUDA matrix");
  const int64_t T = q.size(0), K = q.size(1);
  TORCH_CHECK(K % kVec == 0 && reinterpret_cast<uintptr_t>(q.data_ptr()) % 8 == 0,
              "dequantize_act_bf16: K = ", K, " must be a multiple of 8 and q 8-byte aligned");
  const c10::cuda::CUDAGuard guard(q.device());
  const at::Tensor s = scale.to(at::kFloat).contiguous();
  TORCH_CHECK(s.numel() == T && s.is_cuda(), "dequantize_act_bf16: one scale per row expected");
  at::Tensor out = at::empty({T, K}, q.options().dtype(at::kBFloat16));
  if (T == 0 || K == 0) return out;
  const int64_t n8 = T * K / kVec;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>((n8 + 255) / 256, 4096));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto* qp = reinterpret_cast<const uint8_t*>(q.data_ptr());
  auto* op = reinterpret_cast<__nv_bfloat16*>(out.data_ptr());
  if (fp8) {
    dequant_act_kernel<true><<<grid, 256, 0, stream>>>(qp, s.data_ptr<float>(), op, T, K);
  } else {
    dequant_act_kernel<false><<<grid, 256, 0, stream>>>(qp, s.data_ptr<float>(), op, T, K);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace jointnas::search::cuda
