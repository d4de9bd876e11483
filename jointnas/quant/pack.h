// Packed (kernel / file) layout of a quantized weight, and the bit-exact round trip to the
// reference layout. One layout per weight type:
//   kNone     data [N, K] in the compute dtype
//   kInt, 8b  data [N, K] int8 (row-major, as _int_mm / the GEMVs read it)
//   kInt, 4b  data [N, K / 2] uint8, two values per byte: column 2j in the low nibble, 2j + 1 in
//             the high nibble (needs K even)
//   kFp8E4M3  data [N, K] float8_e4m3fn
//   kGgml     data [N, row bytes] uint8: ggml's blocks as GGUF stores them (no scale / zero;
//             group == K)
// scale [N, K / group] in the row's scale dtype, zero [N, K / group] uint8 (asymmetric only).
#pragma once

#include <ATen/core/Tensor.h>

#include "jointnas/quant/quantize.h"

namespace jointnas::quant {

struct PackedWeight {
  const QuantFormat* format = nullptr;
  int64_t out_features = 0;  // N
  int64_t in_features = 0;   // K
  int64_t group = 0;
  at::Tensor data;
  at::Tensor scale;
  at::Tensor zero;

  int64_t bytes() const;  // storage of data + scale + zero
  PackedWeight to(c10::Device device) const;
};

PackedWeight pack(const QuantizedWeight& qw);
QuantizedWeight unpack(const PackedWeight& pw);

}  // namespace jointnas::quant
