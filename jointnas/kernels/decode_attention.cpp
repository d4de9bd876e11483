// Dispatch and reference of decode_attention.
#include "jointnas/kernels/decode_attention.h"

#include <ATen/ATen.h>

namespace jointnas::kernels {

#ifdef JNAS_WITH_CUDA
at::Tensor decode_attention_cuda(const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& pos, double scale);
#endif

bool decode_attention_applies(const at::Tensor& q, const at::Tensor& k_cache) {
#ifdef JNAS_WITH_CUDA
  if (!q.is_cuda() || q.dim() != 4 || k_cache.dim() != 4) return false;
  const int64_t hd = q.size(3), G = q.size(2);
  const auto t = q.scalar_type();
  return (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) && t == k_cache.scalar_type() &&
         (hd == 64 || hd == 128) && G >= 1 && (G <= 4 || G == 8) && k_cache.size(3) == hd &&
         k_cache.size(1) == q.size(1) && k_cache.size(0) == q.size(0) && k_cache.is_contiguous();
#else
  (void)q;
  (void)k_cache;
  return false;
#endif
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& pos, double scale) {
#ifdef JNAS_WITH_CUDA
  return decode_attention_cuda(q, k_cache, v_cache, pos, scale);
#else
  (void)q, (void)k_cache, (void)v_cache, (void)pos, (void)scale;
  TORCH_CHECK(false, "decode_attention needs a CUDA build");
#endif
}

at::Tensor decode_attention_ref(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, int64_t pos, double scale) {
  return at::scaled_dot_product_attention(q, k_cache.narrow(2, 0, pos + 1),
                                          v_cache.narrow(2, 0, pos + 1), {}, 0.0, false, scale);
}

}  // namespace jointnas::kernels
