// Reference implementations: plain ATen ops with transformers' LlamaForCausalLM numerics.
#include <ATen/ATen.h>

#include "jointnas/kernels/fused.h"

namespace jointnas::kernels {

at::Tensor rms_norm_ref(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor var = x32.pow(2).mean(-1, /*keepdim=*/true);
  return w * (x32 * at::rsqrt(var + eps)).to(x.scalar_type());
}

namespace {
// cat(-x[d/2:], x[:d/2]): HF rotate-half, pairs (i, i + d/2).
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

at::Tensor rope_and_cache_ref(const at::Tensor& qkv, const at::Tensor& positions,
                              const at::Tensor& cos_table, const at::Tensor& sin_table, int64_t nh,
                              int64_t nkv, int64_t hd, at::Tensor& k_cache, at::Tensor& v_cache) {
  const int64_t B = qkv.size(0), T = qkv.size(1);
  at::Tensor q = qkv.narrow(-1, 0, nh * hd).view({B, T, nh, hd}).transpose(1, 2);
  at::Tensor k = qkv.narrow(-1, nh * hd, nkv * hd).view({B, T, nkv, hd}).transpose(1, 2);
  at::Tensor v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).view({B, T, nkv, hd}).transpose(1, 2);
  at::Tensor cos = cos_table.index_select(0, positions).to(qkv.scalar_type());  // [T, hd]
  at::Tensor sin = sin_table.index_select(0, positions).to(qkv.scalar_type());
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  k_cache.index_copy_(2, positions, k);
  v_cache.index_copy_(2, positions, v);
  return q;
}

at::Tensor silu_mul_ref(const at::Tensor& gu) {
  const int64_t I = gu.size(-1) / 2;
  return at::silu(gu.narrow(-1, 0, I)) * gu.narrow(-1, I, I);
}

}  // namespace jointnas::kernels
