// 16-byte vectors in registers: a 32-bit word of one, and 8 bf16 as fp32. Shared by the quantized
// GEMVs, dequantization and activation quantization (included by .cu files only).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace jointnas::quant::cuda {

__device__ __forceinline__ uint32_t word(const int4& v, int c) {
  // c is a compile-time constant after unrolling: this selects a register, no local memory.
  return static_cast<uint32_t>(c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w);
}

// 8 bf16 (one 16-byte read) -> fp32: a bf16 is the upper half of an fp32.
__device__ __forceinline__ void bf16x8_to_float(const int4& v, float (&f)[8]) {
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const uint32_t w = word(v, c);
    f[2 * c] = __uint_as_float(w << 16);
    f[2 * c + 1] = __uint_as_float(w & 0xFFFF0000u);
  }
}

}  // namespace jointnas::quant::cuda
