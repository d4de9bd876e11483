// The quantizing producers (see quantizing_producers.h): the fused CUDA kernel
// (quantizing_producers_cuda.cu) where the runtime uses it, the reference pair elsewhere.
#include "jointnas/quant/quantizing_producers.h"

#include <utility>

#include <ATen/ATen.h>

#include "jointnas/kernels/fused.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/quant/qkernels_cuda.h"
#endif

namespace jointnas::quant {

bool producer_quantizes_input(const QuantFormat& f, c10::Device device, c10::ScalarType dtype) {
  return f.act != ActType::kNone && f.act != ActType::kGgml && device.is_cuda() && dtype == at::kBFloat16;
}

#ifdef JNAS_WITH_CUDA
namespace {

// codes [M, K'] and scales [M, 1] back to the producer input's leading dimensions.
QuantizedAct shaped_like(std::pair<at::Tensor, at::Tensor> qs, const at::Tensor& in, int64_t width) {
  auto sizes = in.sizes().vec();
  sizes.back() = width;
  QuantizedAct qa{qs.first.view(sizes), {}};
  sizes.back() = 1;
  qa.scale = qs.second.view(sizes);
  return qa;
}

}  // namespace
#endif

QuantizedAct rms_norm_quantized(const at::Tensor& x, const at::Tensor& w, double eps,
                                const QuantFormat& f) {
  TORCH_CHECK(f.act != ActType::kNone, "rms_norm_quantized: ", f.name,
              " keeps activations unquantized");
#ifdef JNAS_WITH_CUDA
  if (producer_quantizes_input(f, x.device(), x.scalar_type())) {
    const int64_t K = x.size(-1);
    return shaped_like(cuda::rms_norm_quantize_act(x.reshape({-1, K}).contiguous(), w.contiguous(), eps,
                                                   f.act == ActType::kFp8E4M3PerToken),
                       x, K);
  }
#endif
  return quantize_act_ref(kernels::rms_norm(x, w, eps), f);
}

QuantizedAct attention_output_quantized(const at::Tensor& attn, const QuantFormat& f) {
  TORCH_CHECK(f.act != ActType::kNone, "attention_output_quantized: ", f.name,
              " keeps activations unquantized");
  TORCH_CHECK(attn.dim() == 4, "attention_output_quantized: expected [B, nh, T, hd], got ", attn.sizes());
  const int64_t B = attn.size(0), T = attn.size(2), K = attn.size(1) * attn.size(3);
#ifdef JNAS_WITH_CUDA
  if (producer_quantizes_input(f, attn.device(), attn.scalar_type())) {
    auto [q, s] = cuda::heads_quantize_act(attn, f.act == ActType::kFp8E4M3PerToken);
    return {q.view({B, T, K}), s.view({B, T, 1})};
  }
#endif
  return quantize_act_ref(attn.transpose(1, 2).reshape({B, T, K}), f);
}

QuantizedAct silu_mul_quantized(const at::Tensor& gu, const QuantFormat& f) {
  TORCH_CHECK(f.act != ActType::kNone, "silu_mul_quantized: ", f.name,
              " keeps activations unquantized");
#ifdef JNAS_WITH_CUDA
  if (producer_quantizes_input(f, gu.device(), gu.scalar_type())) {
    const int64_t I = gu.size(-1) / 2;
    return shaped_like(cuda::silu_mul_quantize_act(gu.reshape({-1, 2 * I}).contiguous(),
                                                   f.act == ActType::kFp8E4M3PerToken),
                       gu, I);
  }
#endif
  return quantize_act_ref(kernels::silu_mul(gu), f);
}

}  // namespace jointnas::quant
