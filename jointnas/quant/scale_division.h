// v / s, rounded to nearest even, for the per-token activation quantizers (quantize_act_ref divides
// exactly; the CUDA kernels must give the same codes). An IEEE division per element made the fused
// SiLU * up producer compute-bound, so the kernels divide through the row's reciprocal instead:
//   y = RN(1 / s) once per row; per element q = RN(v y), r = v - q s (exact, one FMA),
//   result = RN(q + r y) (one FMA), or q itself where r == 0 (keeps the sign of v = -0).
// That is one Newton / Markstein correction. It is not the correctly rounded quotient for every
// pair of floats, but it is for every pair the quantizers meet, wherever the code could be nonzero:
// v and amax bf16 with |v| <= amax, s = RN(amax / qmax) >= 2^-100, checked exhaustively for
// qmax 127 and 448 by tests/quant/quant_test.cpp (`ScaleDivision.*`). Where the two differ the
// quotient is below 2^-11, which rounds to the code 0 either way (int8 rounds below 1/2 to 0,
// e4m3 below 2^-10). Rows with s < 2^-100 (amax below ~2^-93), or an infinite / NaN s, take
// the IEEE division.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define JNAS_HOST_DEVICE __host__ __device__
#else
#define JNAS_HOST_DEVICE
#endif

namespace jointnas::quant {

struct ScaleDivision {
  static constexpr float kMinFastScale = 0x1p-100f;  // below: IEEE division
  static constexpr float kMaxFastScale = 0x1p+126f;  // above (or inf / NaN): IEEE division
  float s, y;
  bool fast;

  JNAS_HOST_DEVICE explicit ScaleDivision(float scale)
      : s(scale), y(0.0f), fast(scale >= kMinFastScale && scale <= kMaxFastScale) {
#if defined(__CUDA_ARCH__)
    y = fast ? __frcp_rn(scale) : 0.0f;
#else
    y = fast ? 1.0f / scale : 0.0f;
#endif
  }

  JNAS_HOST_DEVICE float operator()(float v) const {
#if defined(__CUDA_ARCH__)
    if (!fast) return __fdiv_rn(v, s);
    const float q = __fmul_rn(v, y);
    const float r = __fmaf_rn(-q, s, v);
    return r == 0.0f ? q : __fmaf_rn(r, y, q);
#else
    if (!fast) return v / s;
    const float q = v * y;
    const float r = std::fmaf(-q, s, v);
    return r == 0.0f ? q : std::fmaf(r, y, q);
#endif
  }
};

}  // namespace jointnas::quant
