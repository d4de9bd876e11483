// Reference quantizers (plain LibTorch, any device): the definition of every format's numbers.
// Kernels, packers and fake-quant are tested against these. Rounding is round-half-to-even
// (at::round) on x / scale (a true division, never x * (1 / scale)); scales are computed in fp32
// and rounded *up* to the row's scale dtype so that the grid still covers the group's range
// (each element then lands within half a step of its value, see docs/formats.md).
#pragma once

#include <ATen/core/Tensor.h>

#include "jointnas/quant/format.h"

namespace jointnas::quant {

// t / v as an IEEE division on every device. (ATen on CUDA turns a division by a scalar into a
// multiplication by its reciprocal, which can differ in the last bit; the divisor is therefore a
// one-element tensor, which takes the true-division path everywhere.)
at::Tensor div_exact(const at::Tensor& t, double v);

// A quantized weight in the reference (unpacked) layout.
struct QuantizedWeight {
  const QuantFormat* format = nullptr;
  int64_t group = 0;  // input channels per scale (== K for one scale per row; K for kGgml)
  at::Tensor q;       // [N, K]: int8 integers (kInt; asymmetric values in [0, 2^b - 1]),
                      // float8_e4m3fn (kFp8E4M3), or the weight itself (kNone);
                      // kGgml: ggml's blocks, [N, ggml::row_bytes(type, K)] uint8
  at::Tensor scale;   // [N, K / group] in format->scale_dtype (undefined for kNone)
  at::Tensor zero;    // [N, K / group] uint8 zero points (asymmetric only)
};

// w [N, K] (any floating dtype, any device) -> the format's values.
QuantizedWeight quantize_ref(const at::Tensor& w, const QuantFormat& format);

// The two halves of quantize_ref, for quantizers that choose the values themselves (GPTQ):
// the scales (and zero points) of w [N, K] for `group` columns per scale, and the values of w
// on a given grid. quantize_ref(w) == quantize_on_grid(w, weight_grid(w, f, f.group_for(K))).
QuantizedWeight weight_grid(const at::Tensor& w, const QuantFormat& format, int64_t group);
// Fills q of `grid` (scale / zero / group as given) by rounding w [N, K] onto it.
QuantizedWeight quantize_on_grid(const at::Tensor& w, QuantizedWeight grid);
// (q - zero) * scale in fp32, rounded once to `dtype`.
at::Tensor dequantize_ref(const QuantizedWeight& qw, c10::ScalarType dtype);

// ggml formats: blocks [N, row bytes] -> fp32 [N, in_features] (dequantize_row_* of ggml).
at::Tensor ggml_dequantize_weight(const at::Tensor& blocks, const QuantFormat& format, int64_t in_features);
// ggml formats: x [..., K] as ggml-cpu's matmul quantizes it for this weight type (q8_0 / q8_K /
// fp16 values, ggml_quants.h), in x's dtype. K must be a multiple of the format's block.
at::Tensor ggml_fake_act(const at::Tensor& x, const QuantFormat& format);

// Per-token dynamic activation quantization: x [..., K] -> q [..., K] (int8 or float8_e4m3fn),
// scale [..., 1] fp32 = amax / qmax (1 for an all-zero row). Undefined for weight-only formats.
struct QuantizedAct {
  at::Tensor q;
  at::Tensor scale;
};
QuantizedAct quantize_act_ref(const at::Tensor& x, const QuantFormat& format);
at::Tensor dequantize_act_ref(const QuantizedAct& qa, c10::ScalarType dtype);

// Straight-through fake quantization for training. Forward: bitwise equal to
// dequantize_ref(quantize_ref(w), w.dtype) (a separate fused expression, tested against it).
// Backward: the gradient passes unchanged where w / scale (+ zero) lies inside the clipping range
// [qmin - 1/2, qmax + 1/2] and is zero outside; scales are treated as constants.
at::Tensor fake_quant(const at::Tensor& w, const QuantFormat& format);
// The same with an explicit group (format.allows_group(K, group)).
at::Tensor fake_quant(const at::Tensor& w, const QuantFormat& format, int64_t group);
// Per-token fake quantization of activations (identity for weight-only formats), same rules.
at::Tensor fake_quant_act(const at::Tensor& x, const QuantFormat& format);

// The format's linear as the deployed kernel defines it, in double precision: weight-only
// formats compute x @ dequant(W)^T with the fp32 dequantized weight; w8a8 and fp8 quantize x per
// token and compute the integer / e4m3 dot products exactly, times both scales. x [..., K] ->
// [..., N] in `out_dtype` (one final rounding).
at::Tensor linear_ref(const at::Tensor& x, const QuantizedWeight& qw, c10::ScalarType out_dtype);
// The same from x already quantized (w8a8 / fp8): x.q [..., K], x.scale [..., 1].
at::Tensor linear_ref(const QuantizedAct& x, const QuantizedWeight& qw, c10::ScalarType out_dtype);

}  // namespace jointnas::quant
