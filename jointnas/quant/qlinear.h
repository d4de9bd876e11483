// QuantLinear: y = x W^T for a weight in any registry format, through the fastest real kernel
// the device has for the format and the number of rows M (docs/formats.md lists the paths):
//   CUDA bf16  bf16: our GEMV (M = 1) / cuBLAS
//              w4a16, w8a16: our GEMV (M <= 4), else dequantize (one kernel) + cuBLAS
//              w8a8: fused per-token quantization, then our dp4a GEMV (M <= 4) or torch's
//                    _int_mm (int8 tensor cores) + our scale epilogue
//              fp8_e4m3: fused per-token quantization, then our GEMV (M <= 4) or torch's
//                    _scaled_mm with row-wise scales
//   CPU        weight-only: the dequantized weight is cached in the compute dtype and BLAS runs
//              it (measured faster than torch's int4/int8 CPU kernels on our CI cores);
//              w8a8: _int_mm (exact int32) + scale epilogue; fp8: _scaled_mm in fp32 + scales
//   any        ggml formats: the dequantized weight cached, activations quantized as ggml-cpu
//              does (q8_0 / q8_K / fp16, ggml_fake_act), then BLAS
// Every path matches linear_ref within a derived bound (tests/quant).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "jointnas/quant/pack.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::quant {

// _int_mm on CUDA needs more than 16 rows; smaller batches are padded with zero rows (w8a8
// between the GEMV and _int_mm; the cost model counts the padded copy).
inline constexpr int64_t kIntMmMinRows = 17;

class QuantLinear {
 public:
  QuantLinear() = default;
  // Takes a packed weight (any device) and prepares it for `device` / `dtype` (the compute
  // dtype of activations; bf16 on CUDA).
  QuantLinear(PackedWeight w, c10::Device device, c10::ScalarType dtype);
  // Round-to-nearest quantization of a float weight [N, K].
  static QuantLinear quantize(const at::Tensor& w, const QuantFormat& format, c10::Device device,
                              c10::ScalarType dtype);

  // x [..., K] in the compute dtype -> [..., N].
  at::Tensor forward(const at::Tensor& x) const;
  // residual + forward(x), fused into the GEMV epilogue where one runs (same two roundings).
  at::Tensor forward_add(const at::Tensor& x, const at::Tensor& residual) const;
  // The same from x already quantized per token for this format (x.q [..., K] int8 or e4m3,
  // x.scale [..., 1] fp32), as quantize_act_ref or a fused producer makes it: bitwise forward()
  // of the x that quantizes to it. Formats that quantize activations only.
  at::Tensor forward(const QuantizedAct& x) const;
  at::Tensor forward_add(const QuantizedAct& x, const at::Tensor& residual) const;

  // The kernel path forward() takes for M rows ("gemv_w4a16", "dequant+cublas", ...).
  std::string path_for(int64_t m) const;

  const QuantFormat& format() const { return *w_.format; }
  const PackedWeight& packed() const { return w_; }
  int64_t out_features() const { return w_.out_features; }
  int64_t in_features() const { return w_.in_features; }
  // Deployed weight storage (packed data + scales + zeros), excluding CPU dequant caches.
  int64_t weight_bytes() const { return w_.bytes(); }
  bool defined() const { return w_.format != nullptr; }

 private:
  enum class Path { kDense, kGemvW4, kGemvW8, kDequantGemm, kGemvW8A8, kIntMm, kGemvFp8,
                    kScaledMm, kGgml, kReference };
  Path choose(int64_t m) const;
  at::Tensor run(const at::Tensor& x2d, const at::Tensor* residual2d) const;
  // The activation-quantized paths from qx [M, K], sx [M, 1].
  at::Tensor run_quantized(const QuantizedAct& x2d, const at::Tensor* residual2d) const;
  QuantizedAct quantize_input(const at::Tensor& x2d) const;
  static bool is_gemv(Path p) {
    return p == Path::kGemvW4 || p == Path::kGemvW8 || p == Path::kGemvW8A8 || p == Path::kGemvFp8;
  }

  PackedWeight w_;            // on the device
  c10::Device device_{c10::kCPU};
  c10::ScalarType dtype_ = c10::kFloat;
  at::Tensor dense_;          // [N, K] compute dtype: bf16 format, or the CPU dequant cache
  at::Tensor scale_row_;      // [1, N] fp32 row scales (w8a8 / fp8 epilogues)
};

}  // namespace jointnas::quant
