// Dispatch: CUDA tensors go to the fused kernels (CUDA builds), everything else to the reference.
#include "jointnas/kernels/fused.h"

#include <ATen/ATen.h>

namespace jointnas::kernels {

#ifdef JNAS_WITH_CUDA
at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor rope_and_cache_cuda(const at::Tensor& qkv, const at::Tensor& positions,
                               const at::Tensor& cos, const at::Tensor& sin, int64_t nh, int64_t nkv,
                               int64_t hd, at::Tensor& k_cache, at::Tensor& v_cache);
at::Tensor silu_mul_cuda(const at::Tensor& gu);
bool has_cuda_kernels() { return true; }
#else
bool has_cuda_kernels() { return false; }
#endif

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
#ifdef JNAS_WITH_CUDA
  if (x.is_cuda()) return rms_norm_cuda(x, w, eps);
#endif
  return rms_norm_ref(x, w, eps);
}

at::Tensor rope_and_cache(const at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& cos,
                          const at::Tensor& sin, int64_t nh, int64_t nkv, int64_t hd,
                          at::Tensor& k_cache, at::Tensor& v_cache) {
#ifdef JNAS_WITH_CUDA
  if (qkv.is_cuda()) return rope_and_cache_cuda(qkv, positions, cos, sin, nh, nkv, hd, k_cache, v_cache);
#endif
  return rope_and_cache_ref(qkv, positions, cos, sin, nh, nkv, hd, k_cache, v_cache);
}

at::Tensor silu_mul(const at::Tensor& gu) {
#ifdef JNAS_WITH_CUDA
  if (gu.is_cuda()) return silu_mul_cuda(gu);
#endif
  return silu_mul_ref(gu);
}

}  // namespace jointnas::kernels
