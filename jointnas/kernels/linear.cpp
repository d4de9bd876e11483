// Dispatch for linear(): GEMV kernel at M = 1 on CUDA bf16, at::linear otherwise.
#include "jointnas/kernels/linear.h"

#include <ATen/ATen.h>

namespace jointnas::kernels {

#ifdef JNAS_WITH_CUDA
at::Tensor gemv_bf16_cuda(const at::Tensor& x, const at::Tensor& w, int variant,
                          const at::Tensor* residual, bool fp32_out = false);
#endif

bool gemv_applies(const at::Tensor& x, const at::Tensor& w) {
#ifdef JNAS_WITH_CUDA
  const int64_t K = w.dim() == 2 ? w.size(1) : -1;
  return x.is_cuda() && w.is_cuda() && x.scalar_type() == at::kBFloat16 &&
         w.scalar_type() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous() && K > 0 &&
         K % 8 == 0 && x.size(-1) == K && x.numel() == K &&
         reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0;
#else
  (void)x;
  (void)w;
  return false;
#endif
}

at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w, int variant) {
#ifdef JNAS_WITH_CUDA
  return gemv_bf16_cuda(x, w, variant, nullptr);
#else
  (void)x;
  (void)w;
  (void)variant;
  TORCH_CHECK(false, "gemv_bf16 needs a CUDA build (-DJNAS_WITH_CUDA=ON)");
#endif
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w) {
  if (gemv_applies(x, w)) {
    auto sizes = x.sizes().vec();
    sizes.back() = w.size(0);
    return gemv_bf16(x, w).view(sizes);
  }
  return at::linear(x, w);
}

at::Tensor linear_logits(const at::Tensor& x, const at::Tensor& w) {
  if (x.scalar_type() == at::kFloat) return kernels::linear(x, w);
#ifdef JNAS_WITH_CUDA
  auto sizes = x.sizes().vec();
  sizes.back() = w.dim() == 2 ? w.size(0) : 0;
  if (gemv_applies(x, w)) return gemv_bf16_cuda(x, w, 0, nullptr, /*fp32_out=*/true).view(sizes);
  if (x.is_cuda() && w.is_cuda() && w.dim() == 2 && x.scalar_type() == w.scalar_type() &&
      (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf)) {
    return at::mm(x.reshape({-1, x.size(-1)}), w.t(), at::kFloat).view(sizes);  // cuBLAS, fp32 C
  }
#endif
  return kernels::linear(x, w).to(at::kFloat);
}

}  // namespace jointnas::kernels

namespace jointnas::kernels {

at::Tensor linear_add(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual) {
#ifdef JNAS_WITH_CUDA
  if (gemv_applies(x, w) && residual.numel() == w.size(0) &&
      residual.scalar_type() == at::kBFloat16 && residual.is_cuda()) {
    return gemv_bf16_cuda(x, w, 0, &residual).view(residual.sizes());
  }
#endif
  return residual + kernels::linear(x, w);
}

}  // namespace jointnas::kernels
