// CUDA kernels for the fused block ops. Memory-bound and tiny at decode (one token): the win is
// one launch instead of 5-20. Math in fp32 with the same rounding points as the reference:
// RMSNorm rounds the normalized value to the compute dtype before the weight product; RoPE rounds
// cos/sin to the compute dtype as transformers does; SiLU rounds its output before the product.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include "jointnas/kernels/pdl_cuda.h"
#include "jointnas/kernels/rowops_cuda.h"

namespace jointnas::kernels {
namespace {

constexpr int kNormThreads = kRowThreads;

// One block per row: sum of squares in fp32, block reduction through shared memory.
template <typename T>
__global__ void rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                int64_t H, float eps) {
  pdl::wait();
  pdl::launch_dependents();
  const int64_t row = blockIdx.x;
  const T* xr = x + row * H;
  T* yr = y + row * H;
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float v = static_cast<float>(xr[i]);
    acc += v * v;
  }
  const float rstd = rsqrtf(block_sum(acc) / static_cast<float>(H) + eps);
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    yr[i] = rms_norm_element<T>(static_cast<float>(xr[i]), rstd, static_cast<float>(w[i]));
  }
}

// The same with each thread's 16-byte vectors of the row held in registers (V per thread; rows of
// a multiple of 16 bytes, 16-byte aligned): two loads in flight per thread instead of a chain of 16
// dependent scalar loads and a second pass over x. The weight, which no earlier kernel writes, is
// loaded before the wait for the kernel that wrote x. At decode (one row: a single block) the
// scalar kernel took 15 us per call on an H200 under Nsight Compute, 65 calls per 8B step.
template <typename T, int V>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_vec_kernel(const int4* __restrict__ x, const int4* __restrict__ w, int4* __restrict__ y,
                        int64_t vecs, int64_t H, float eps) {
  constexpr int E = 16 / sizeof(T);  // elements per vector
  int4 wv[V], xv[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t i = threadIdx.x + j * kNormThreads;
    wv[j] = i < vecs ? __ldg(w + i) : make_int4(0, 0, 0, 0);
  }
  pdl::wait();
  pdl::launch_dependents();
  const int64_t row = blockIdx.x;
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t i = threadIdx.x + j * kNormThreads;
    xv[j] = i < vecs ? x[row * vecs + i] : make_int4(0, 0, 0, 0);  // zeros add nothing
    const T* e = reinterpret_cast<const T*>(&xv[j]);
#pragma unroll
    for (int k = 0; k < E; ++k) {
      const float v = static_cast<float>(e[k]);
      acc += v * v;
    }
  }
  const float rstd = rsqrtf(block_sum(acc) / static_cast<float>(H) + eps);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t i = threadIdx.x + j * kNormThreads;
    if (i >= vecs) continue;
    const T* xe = reinterpret_cast<const T*>(&xv[j]);
    const T* we = reinterpret_cast<const T*>(&wv[j]);
    int4 out;
    T* oe = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < E; ++k) {
      oe[k] = rms_norm_element<T>(static_cast<float>(xe[k]), rstd, static_cast<float>(we[k]));
    }
    y[row * vecs + i] = out;
  }
}

// One block per (token, head) of the fused qkv row; thread i handles the rotary pair (i, i + hd/2).
template <typename T>
__global__ void rope_cache_kernel(const T* __restrict__ qkv, const int64_t* __restrict__ pos,
                                  const float* __restrict__ cos, const float* __restrict__ sin,
                                  T* __restrict__ q_out, T* __restrict__ k_cache,
                                  T* __restrict__ v_cache, int64_t T_len, int64_t nh, int64_t nkv,
                                  int64_t hd, int64_t L) {
  pdl::wait();
  pdl::launch_dependents();
  const int64_t bt = blockIdx.x;  // b * T + t
  const int64_t b = bt / T_len, t = bt % T_len;
  const int64_t head = blockIdx.y;  // [0, nh) q, [nh, nh + nkv) k, then v
  const int64_t half = hd / 2;
  const int64_t p = pos[t];
  const T* src = qkv + bt * (nh + 2 * nkv) * hd + head * hd;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const T x1 = src[i], x2 = src[i + half];
    if (head >= nh + nkv) {  // v: copied to the cache unrotated
      T* dst = v_cache + ((b * nkv + (head - nh - nkv)) * L + p) * hd;
      dst[i] = x1;
      dst[i + half] = x2;
      continue;
    }
    const float c = static_cast<float>(static_cast<T>(cos[p * hd + i]));
    const float s = static_cast<float>(static_cast<T>(sin[p * hd + i]));
    const float a = static_cast<float>(x1), bb = static_cast<float>(x2);
    const T r1 = static_cast<T>(a * c - bb * s);
    const T r2 = static_cast<T>(bb * c + a * s);
    T* dst = head < nh ? q_out + ((b * nh + head) * T_len + t) * hd
                       : k_cache + ((b * nkv + (head - nh)) * L + p) * hd;
    dst[i] = r1;
    dst[i + half] = r2;
  }
}

template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gu, T* __restrict__ out, int64_t rows,
                                int64_t I) {
  pdl::wait();
  pdl::launch_dependents();
  const int64_t n = rows * I;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / I, i = idx % I;
    out[idx] = silu_mul_element<T>(static_cast<float>(gu[r * 2 * I + i]),
                                   static_cast<float>(gu[r * 2 * I + I + i]));
  }
}

// The same on 16-byte vectors (I and the row start a multiple of 16 bytes): one load of gate and one
// of up per thread, 8 bf16 each, instead of scalar loads.
template <typename T>
__global__ void silu_mul_vec_kernel(const int4* __restrict__ gu, int4* __restrict__ out, int64_t rows,
                                    int64_t vi) {
  pdl::wait();
  pdl::launch_dependents();
  constexpr int E = 16 / sizeof(T);
  const int64_t n = rows * vi;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / vi, i = idx % vi;
    const int4 g4 = gu[r * 2 * vi + i], u4 = gu[r * 2 * vi + vi + i];
    const T* g = reinterpret_cast<const T*>(&g4);
    const T* u = reinterpret_cast<const T*>(&u4);
    int4 o4;
    T* o = reinterpret_cast<T*>(&o4);
#pragma unroll
    for (int e = 0; e < E; ++e) {
      o[e] = silu_mul_element<T>(static_cast<float>(g[e]), static_cast<float>(u[e]));
    }
    out[idx] = o4;
  }
}

}  // namespace

at::Tensor rms_norm_cuda(const at::Tensor& x_in, const at::Tensor& w, double eps) {
  TORCH_CHECK(w.dim() == 1 && x_in.size(-1) == w.size(0), "rms_norm: weight [H] expected, got ",
              w.sizes(), " for input ", x_in.sizes());
  TORCH_CHECK(x_in.scalar_type() == w.scalar_type(), "rms_norm: x and w dtypes differ");
  at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t H = x.size(-1), rows = x.numel() / H;
  if (rows == 0) return y;
  auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t row_bytes = H * static_cast<int64_t>(x.element_size());
  const int64_t vecs = row_bytes / 16;
  const bool vec = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0 && w.is_contiguous() &&
                   vecs <= 8 * kNormThreads;
  if (vec) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rms_norm_vec", [&] {
      auto run = [&](auto kernel) {
        pdl::launch(kernel, dim3(static_cast<unsigned>(rows)), dim3(kNormThreads), 0, stream,
                    reinterpret_cast<const int4*>(x.data_ptr()), reinterpret_cast<const int4*>(w.data_ptr()),
                    reinterpret_cast<int4*>(y.data_ptr()), vecs, H, static_cast<float>(eps));
      };
      if (vecs <= kNormThreads) {
        run(rms_norm_vec_kernel<scalar_t, 1>);
      } else if (vecs <= 2 * kNormThreads) {
        run(rms_norm_vec_kernel<scalar_t, 2>);
      } else if (vecs <= 4 * kNormThreads) {
        run(rms_norm_vec_kernel<scalar_t, 4>);
      } else {
        run(rms_norm_vec_kernel<scalar_t, 8>);
      }
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rms_norm_cuda", [&] {
    pdl::launch(rms_norm_kernel<scalar_t>, dim3(static_cast<unsigned>(rows)), dim3(kNormThreads), 0,
                stream, x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                y.data_ptr<scalar_t>(), H, static_cast<float>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

at::Tensor rope_and_cache_cuda(const at::Tensor& qkv_in, const at::Tensor& positions,
                               const at::Tensor& cos, const at::Tensor& sin, int64_t nh, int64_t nkv,
                               int64_t hd, at::Tensor& k_cache, at::Tensor& v_cache) {
  at::Tensor qkv = qkv_in.contiguous();
  const int64_t B = qkv.size(0), T = qkv.size(1);
  TORCH_CHECK(qkv.size(2) == (nh + 2 * nkv) * hd, "rope_and_cache: qkv width ", qkv.size(2),
              " != (nh + 2 nkv) hd = ", (nh + 2 * nkv) * hd);
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.numel() == T && positions.is_cuda(),
              "rope_and_cache: positions must be int64 [T] on the device");
  TORCH_CHECK(cos.scalar_type() == at::kFloat && cos.is_contiguous() && sin.is_contiguous() &&
                  cos.size(1) == hd,
              "rope_and_cache: cos/sin must be contiguous fp32 [P, hd]");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.size(0) == B &&
                  k_cache.size(1) == nkv && k_cache.size(3) == hd &&
                  k_cache.scalar_type() == qkv.scalar_type(),
              "rope_and_cache: cache must be contiguous [B, nkv, L, hd] of the compute dtype");
  at::Tensor q = at::empty({B, nh, T, hd}, qkv.options());
  if (B * T == 0) return q;
  const int64_t L = k_cache.size(2);
  dim3 grid(static_cast<unsigned>(B * T), static_cast<unsigned>(nh + 2 * nkv));
  const int threads = static_cast<int>(std::min<int64_t>(std::max<int64_t>(hd / 2, 32), 256));
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, qkv.scalar_type(), "rope_cache", [&] {
    pdl::launch(rope_cache_kernel<scalar_t>, grid, dim3(threads), 0, stream,
                qkv.const_data_ptr<scalar_t>(), positions.const_data_ptr<int64_t>(),
                cos.const_data_ptr<float>(), sin.const_data_ptr<float>(), q.data_ptr<scalar_t>(),
                k_cache.data_ptr<scalar_t>(), v_cache.data_ptr<scalar_t>(), T, nh, nkv, hd, L);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return q;
}

at::Tensor silu_mul_cuda(const at::Tensor& gu_in) {
  at::Tensor gu = gu_in.contiguous();
  const int64_t I = gu.size(-1) / 2, rows = gu.numel() / gu.size(-1);
  auto sizes = gu.sizes().vec();
  sizes.back() = I;
  at::Tensor out = at::empty(sizes, gu.options());
  if (rows * I == 0) return out;
  const int threads = 256;
  auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t row_bytes = I * static_cast<int64_t>(gu.element_size());
  if (row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(gu.data_ptr()) % 16 == 0) {
    const int64_t vi = row_bytes / 16;
    const int64_t vblocks = std::min<int64_t>((rows * vi + threads - 1) / threads, 65535);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, gu.scalar_type(), "silu_mul_vec", [&] {
      pdl::launch(silu_mul_vec_kernel<scalar_t>, dim3(static_cast<unsigned>(vblocks)), dim3(threads), 0,
                  stream, reinterpret_cast<const int4*>(gu.data_ptr()), reinterpret_cast<int4*>(out.data_ptr()),
                  rows, vi);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
  }
  const int64_t blocks = std::min<int64_t>((rows * I + threads - 1) / threads, 65535);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, gu.scalar_type(), "silu_mul", [&] {
    pdl::launch(silu_mul_kernel<scalar_t>, dim3(static_cast<unsigned>(blocks)), dim3(threads), 0,
                stream, gu.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows, I);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace jointnas::kernels
