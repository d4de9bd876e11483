// The quantizing producers: the ops whose output is the input of a w8a8 / fp8 linear (RMSNorm,
// SiLU(gate) * up, the attention output's transpose) write it as per-token codes and scales in
// the same kernel, instead of a bf16 tensor that QuantLinear then quantizes (docs/formats.md, "Who
// quantizes the activations"). The CUDA kernels are in quantizing_producers_cuda.cu; the
// reference is the unfused pair, quantize_act_ref(kernels::rms_norm(...)) and so on.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::quant {

// Whether the runtime hands a linear of format `f` on `device` its input already quantized by the
// producer of that input (RMSNorm before q/k/v and gate/up, the attention output's [B, nh, T, hd]
// -> [B, T, nh hd] gather before o_proj, SiLU(gate) * up before down), one kernel instead of the
// producer plus QuantLinear's own per-token quantization: formats that quantize activations, on
// CUDA with bf16 activations. The cost model times such linears from their quantized input
// (profile/linear_cost.cpp).
bool producer_quantizes_input(const QuantFormat& f, c10::Device device, c10::ScalarType dtype);

// The fused producers: bitwise quantize_act(rms_norm(x, w, eps)) and quantize_act(silu_mul(gu))
// as QuantLinear quantizes on that device (x [..., K] -> q [..., K], scale [..., 1]; gu [..., 2I]
// -> [..., I]). On CUDA (bf16) one kernel each; elsewhere the reference pair.
QuantizedAct rms_norm_quantized(const at::Tensor& x, const at::Tensor& w, double eps,
                                const QuantFormat& f);
QuantizedAct silu_mul_quantized(const at::Tensor& gu, const QuantFormat& f);
// attn [B, nh, T, hd] -> the codes of attn.transpose(1, 2).reshape(B, T, nh * hd), scale
// [B, T, 1]: on CUDA read through the strides, without the transposed bf16 copy.
QuantizedAct attention_output_quantized(const at::Tensor& attn, const QuantFormat& f);

}  // namespace jointnas::quant
