// What every weight-only kernel shares (the GEMVs in gemv_w4*_cuda.cu / gemv_w8a16_cuda.cu and
// dequant_cuda.cu): the block shape, exact integer -> fp32 conversions without I2F, division by a
// runtime constant, and the host-side argument checks. Included by .cu files only.
//
// Conversion without I2F: OR-ing an integer i < 2^23 into the mantissa of 2^23 gives the fp32
// value 2^23 + i exactly, so one LOP3 (mask | magic) and one FFMA / FADD with a per-group
// constant give (q - zero) exactly in fp32 (see nibbles_minus_zero).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include "jointnas/quant/vec_cuda.h"

namespace jointnas::quant::cuda::wo {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// 2^23 as fp32 bits: the mantissa's unit is 1, so (kMagic | i) is the float 2^23 + i exactly.
constexpr uint32_t kMagic = 0x4B000000u;

__device__ __forceinline__ float as_float(uint32_t u) { return __uint_as_float(u); }

// Per-group constants c[j] = -(2^(23 - 4j) + z): c[0] from bits (0xCB000000 is -2^23), the
// others by adding 2^23 - 2^(23 - 4j); all operands and results are exact, so are the FADDs.
__device__ __forceinline__ void zero_consts(uint32_t z, float (&c)[4]) {
  c[0] = as_float(0xCB000000u | z);
  c[1] = c[0] + 7864320.0f;  // 2^23 - 2^19
  c[2] = c[0] + 8355840.0f;  // 2^23 - 2^15
  c[3] = c[0] + 8386560.0f;  // 2^23 - 2^11
}

// (a & kMask) | kMagic in one LOP3. Written as C++, the two constants make the compiler emit two
// LOP3s (an instruction takes one immediate); in PTX, ptxas keeps one in a register.
template <uint32_t kMask>
__device__ __forceinline__ uint32_t mask_or_magic(uint32_t a) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(kMask), "n"(kMagic));
  return d;
}

// The 8 nibbles of w (column j in bits 4j..4j+3) -> (q_j - z) exactly in fp32. Nibble j < 4 is
// masked in place: (w & (0xF << 4j)) | magic = 2^23 + q 2^4j; times 2^-4j (exact) plus c[j] is
// q - z, one rounding of an exact value, i.e. none. Nibbles 4..7 reuse the masks on w >> 16.
// Cost: 1 LOP3 + 1 FFMA per value, 1 shift per 8.
__device__ __forceinline__ void nibbles_minus_zero(uint32_t w, const float (&c)[4], float (&v)[8]) {
  const uint32_t h = w >> 16;
  v[0] = as_float(mask_or_magic<0x000Fu>(w)) + c[0];
  v[1] = fmaf(as_float(mask_or_magic<0x00F0u>(w)), 0x1p-4f, c[1]);
  v[2] = fmaf(as_float(mask_or_magic<0x0F00u>(w)), 0x1p-8f, c[2]);
  v[3] = fmaf(as_float(mask_or_magic<0xF000u>(w)), 0x1p-12f, c[3]);
  v[4] = as_float(mask_or_magic<0x000Fu>(h)) + c[0];
  v[5] = fmaf(as_float(mask_or_magic<0x00F0u>(h)), 0x1p-4f, c[1]);
  v[6] = fmaf(as_float(mask_or_magic<0x0F00u>(h)), 0x1p-8f, c[2]);
  v[7] = fmaf(as_float(mask_or_magic<0xF000u>(h)), 0x1p-12f, c[3]);
}

// 4 int8 (byte k = column k) -> exact fp32. XOR 0x80 maps q to q + 128 in [0, 255]; PRMT places
// that byte under the magic exponent (bytes [u, 0, 0, 0x4B]); subtracting 2^23 + 128 gives q.
__device__ __forceinline__ void int8x4_to_float(uint32_t w, float* q) {
  const uint32_t u = w ^ 0x80808080u;
#pragma unroll
  for (int k = 0; k < 4; ++k) q[k] = as_float(__byte_perm(u, kMagic, 0x7440u + k)) - 8388736.0f;
}

// Unsigned division by a runtime constant as a multiply-high (PyTorch's IntDivider): exact for
// n < 2^31. The dequant kernels need the row (and group) of a flat index; a hardware-free
// division would cost ~20 instructions per 8 values.
struct FastDiv {
  uint32_t m = 1;
  uint32_t s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t d) {
    while ((uint64_t{1} << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

// ---------------------------------------------------------------------------------------------
// Host side: argument checks (expected vs got).

inline void check_tensor(const char* fn, const char* name, const at::Tensor& t, at::ScalarType dtype,
                         at::IntArrayRef shape, c10::Device device) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": expected ", name, " of dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == device, fn, ": expected ", name, " on ", device, ", got ", t.device());
  TORCH_CHECK(t.sizes().equals(shape), fn, ": expected ", name, " of shape ", shape, ", got ",
              t.sizes());
  TORCH_CHECK(t.is_contiguous(), fn, ": expected ", name, " to be contiguous, got strides ",
              t.strides());
}

inline void check_aligned(const char* fn, const char* name, const at::Tensor& t, int bytes) {
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % bytes == 0, fn, ": expected ", name,
              " aligned to ", bytes, " bytes (vector loads), got address ", t.data_ptr());
}

inline void check_cuda_matrix(const char* fn, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.dim() == 2, fn, ": expected ", name,
              " to be a 2-d CUDA tensor, got ",
              t.defined() ? t.sizes().vec() : std::vector<int64_t>{}, " on ",
              t.defined() ? t.device().str() : std::string("(undefined)"));
}

}  // namespace jointnas::quant::cuda::wo
