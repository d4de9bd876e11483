// ggml's block formats, written from ggml-quants.c (see ggml_quants.h). Bitwise equality with
// libggml rests on evaluating every float expression in ggml's order, one rounding per operation:
// this file is compiled with -ffp-contract=off (no fused multiply-add), as ggml-base is compiled
// without -mfma; tests/quant/ggml_quants_test.cpp checks it against the library.
#include "jointnas/quant/ggml_quants.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace jointnas::quant::ggml {
namespace {

constexpr int kQK = 32;       // QK4_0, QK8_0
constexpr int kQKK = 256;     // QK_K
constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (its result for |x| >
// 2^22 is not a rounding, and ggml's callers clamp it; we reproduce it as is).
int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// float -> int32 as x86's cvt(t)ss2si / cvtps_epi32 do, which is what ggml's compiled casts
// execute: NaN and values outside int32 give INT32_MIN (in C++ such a cast is undefined, and
// ggml reaches it: a subnormal block max makes 1 / d infinite). `v` is already rounded or is
// truncated here.
int32_t x86_to_int32(float v) {
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}
// ... then to int8_t as C's conversion through the register does: the low byte.
int8_t low_byte(int32_t v) { return static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint32_t>(v) & 0xFF)); }

void store_half(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}
float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// ---- q8_0: {fp16 d; int8 qs[32]} ----
void quantize_q8_0(const float* x, uint8_t* y) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(y, d);
  for (int j = 0; j < kQK; ++j) y[2 + j] = static_cast<uint8_t>(low_byte(x86_to_int32(std::roundf(x[j] * id))));
}
void dequantize_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// ---- q4_0: {fp16 d; uint8 qs[16]}, value j in the low nibble of byte j, j + 16 in the high ----
void quantize_q4_0(const float* x, uint8_t* y) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(y, d);
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = x[j] * id, x1 = x[kQK / 2 + j] * id;
    // ggml truncates x + 8.5 to int8_t: round half up on the shifted value.
    const uint8_t q0 = static_cast<uint8_t>(std::min<int>(15, low_byte(x86_to_int32(x0 + 8.5f))));
    const uint8_t q1 = static_cast<uint8_t>(std::min<int>(15, low_byte(x86_to_int32(x1 + 8.5f))));
    y[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}
void dequantize_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}

// ggml's make_qkx2_quants: an asymmetric n-value grid (scale, min) refined over nstep + 1 trial
// scales by weighted least squares. Returns the scale; *the_min = -min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;  // use_mad is false for q4_K and q5_K
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ggml's make_qx_quants with rmse_type 1 and no importance weights (what q6_K uses): a
// symmetric grid of [-nmax, nmax - 1], 19 trial scales, weights x^2. L holds values + nmax.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// The 6-bit scale and min of sub-block j from the 12 packed bytes of q4_K / q5_K.
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The super-block part q4_K and q5_K share: 8 sub-blocks of 32 with make_qkx2_quants, their
// scales and mins quantized to 6 bits against fp16 d / dmin, then the values on that grid.
// Layout {fp16 d; fp16 dmin; uint8 scales[12]; ...}; L gets the values in [0, nmax].
void quantize_k_superblock(const float* x, uint8_t* y, int nmax, float rmin, int nstep, uint8_t* L) {
  std::array<float, 8> mins{}, scales{};
  std::array<float, 32> weights{};
  std::array<uint8_t, 32> Laux{};
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQKK / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights.data(), L + 32 * j, &mins[j],
                                 Laux.data(), rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* sc = y + 4;
  std::memset(sc, 0, 12);
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQKK / 32; ++j) {
    // ggml stores nearest_int into a uint8_t before the MIN (a negative scale wraps to >= 63).
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      sc[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  store_half(y, max_scale / 63.f);
  store_half(y + 2, max_min / 63.f);
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, sc, &s, &m);
    const float d = load_half(y) * s;
    if (d == 0.0f) continue;  // L keeps make_qkx2_quants' values, as in ggml
    const float dm = load_half(y + 2) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// ---- q4_K: {d, dmin, scales[12], qs[128]}: 64 values per 32 bytes, low nibbles first ----
void quantize_q4_K(const float* x, uint8_t* y) {
  std::array<uint8_t, kQKK> L{};
  quantize_k_superblock(x, y, 15, -1.f, 20, L.data());
  uint8_t* q = y + 16;
  for (int j = 0; j < kQKK; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}
void dequantize_q4_K(const uint8_t* b, float* y) {
  const float d = load_half(b), min = load_half(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* q = b + 16;
  int is = 0;
  for (int j = 0; j < kQKK; j += 64) {
    uint8_t s, m;
    get_scale_min_k4(is + 0, sc, &s, &m);
    const float d1 = d * s, m1 = min * m;
    get_scale_min_k4(is + 1, sc, &s, &m);
    const float d2 = d * s, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

// ---- q5_K: {d, dmin, scales[12], qh[32], qs[128]}: q4_K plus a fifth bit per value in qh ----
void quantize_q5_K(const float* x, uint8_t* y) {
  std::array<uint8_t, kQKK> L{};
  quantize_k_superblock(x, y, 31, -0.5f, 15, L.data());
  uint8_t* qh = y + 16;
  uint8_t* ql = y + 48;
  std::memset(qh, 0, 32);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQKK; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] |= m1;
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 = static_cast<uint8_t>(m1 << 2);
    m2 = static_cast<uint8_t>(m2 << 2);
    ql += 32;
  }
}
void dequantize_q5_K(const uint8_t* b, float* y) {
  const float d = load_half(b), min = load_half(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < kQKK; j += 64) {
    uint8_t s, m;
    get_scale_min_k4(is + 0, sc, &s, &m);
    const float d1 = d * s, m1 = min * m;
    get_scale_min_k4(is + 1, sc, &s, &m);
    const float d2 = d * s, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}

// ---- q6_K: {ql[128], qh[64], int8 scales[16], fp16 d}: 16 sub-blocks of 16, 6-bit values ----
void quantize_q6_K(const float* x, uint8_t* y) {
  std::array<int8_t, kQKK> L{};
  std::array<float, kQKK / 16> scales{};
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kQKK / 16; ++ib) {
    const float scale = make_qx_quants(16, 32, x + 16 * ib, L.data() + 16 * ib);
    scales[ib] = scale;
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  uint8_t* ql = y;
  uint8_t* qh = y + 128;
  int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
  uint8_t* dp = y + 208;
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(y, 0, 210);
    store_half(dp, 0.f);
    return;
  }
  const float iscale = -128.f / max_scale;
  store_half(dp, 1 / iscale);
  for (int ib = 0; ib < kQKK / 16; ++ib) {
    sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  }
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = load_half(dp) * sc[j];
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = std::max(-32, std::min(31, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 32);
    }
  }
  for (int j = 0; j < kQKK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
      const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                   ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}
void dequantize_q6_K(const uint8_t* b, float* y) {
  const float d = load_half(b + 208);
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < kQKK; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int8_t q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int8_t q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// The activation quantizers' values (fake quant of one block in place).
// ggml-cpu's AVX2 quantize_row_q8_0: id = 127 / amax (not 1 / d), round half to even.
void fake_act_q8_0(float* x) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = fp16_to_fp32(fp32_to_fp16(amax / 127.f));
  const float id = amax != 0.0f ? 127.f / amax : 0.0f;
  for (int j = 0; j < kQK; ++j) {
    // Integer codes (the packs saturate to int8); a code 0 gives +0, as ggml's dequantization.
    const int q = std::clamp(x86_to_int32(std::nearbyint(x[j] * id)), -128, 127);
    x[j] = static_cast<float>(q) * d;
  }
}
// quantize_row_q8_K_ref: iscale = -127 / max (signed), fp32 d = 1 / iscale.
void fake_act_q8_K(float* x) {
  float max = 0, amax = 0;
  for (int j = 0; j < kQKK; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    std::fill(x, x + kQKK, 0.0f);
    return;
  }
  const float iscale = -127.f / max;
  const float d = 1 / iscale;
  for (int j = 0; j < kQKK; ++j) {
    const int8_t q = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    x[j] = d * q;
  }
}

const std::array<TypeInfo, 8>& table() {
  // clang-format off
  static const std::array<TypeInfo, 8> t = {{
    {Type::kF32,  "f32",  1,   4,   Type::kF32},
    {Type::kF16,  "f16",  1,   2,   Type::kF16},
    {Type::kQ4_0, "q4_0", 32,  18,  Type::kQ8_0},
    {Type::kQ8_0, "q8_0", 32,  34,  Type::kQ8_0},
    {Type::kQ4_K, "q4_K", 256, 144, Type::kQ8_K},
    {Type::kQ5_K, "q5_K", 256, 176, Type::kQ8_K},
    {Type::kQ6_K, "q6_K", 256, 210, Type::kQ8_K},
    {Type::kQ8_K, "q8_K", 256, 292, Type::kQ8_K},
  }};
  // clang-format on
  return t;
}

}  // namespace

const TypeInfo& type_info(Type t) {
  for (const TypeInfo& i : table()) {
    if (i.type == t) return i;
  }
  throw std::invalid_argument("ggml type " + std::to_string(static_cast<uint32_t>(t)) +
                              " is not one jointnas writes");
}

int64_t row_bytes(Type t, int64_t n) {
  const TypeInfo& i = type_info(t);
  if (n % i.block != 0) {
    throw std::invalid_argument(std::string("ggml ") + i.name + ": a row of " + std::to_string(n) +
                                " values is not a whole number of blocks of " + std::to_string(i.block));
  }
  return n / i.block * i.block_bytes;
}

// The FP16 library's conversion (as ggml_compute_fp32_to_fp16): round to nearest even through a
// scaled float addition, NaN kept quiet.
uint16_t fp32_to_fp16(float f) {
  const float scale_to_inf = 0x1.0p+112f, scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = bits_of(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = float_of((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = bits_of(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0x1F) return float_of(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return float_of(sign);
    // Subnormal: mant * 2^-24, exact in fp32.
    const float v = static_cast<float>(mant) * 0x1.0p-24f;
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

void quantize_row(Type t, std::span<const float> x, std::span<uint8_t> out) {
  const TypeInfo& info = type_info(t);
  const int64_t n = static_cast<int64_t>(x.size());
  if (static_cast<int64_t>(out.size()) != row_bytes(t, n)) {
    throw std::invalid_argument(std::string("ggml ") + info.name + ": output buffer has the wrong size");
  }
  const int64_t nb = n / info.block;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x.data() + b * info.block;
    uint8_t* yb = out.data() + b * info.block_bytes;
    switch (t) {
      case Type::kF32: std::memcpy(yb, xb, 4); break;
      case Type::kF16: store_half(yb, *xb); break;
      case Type::kQ8_0: quantize_q8_0(xb, yb); break;
      case Type::kQ4_0: quantize_q4_0(xb, yb); break;
      case Type::kQ4_K: quantize_q4_K(xb, yb); break;
      case Type::kQ5_K: quantize_q5_K(xb, yb); break;
      case Type::kQ6_K: quantize_q6_K(xb, yb); break;
      case Type::kQ8_K: throw std::invalid_argument("q8_K holds activations only");
    }
  }
}

void dequantize_row(Type t, std::span<const uint8_t> blocks, std::span<float> y) {
  const TypeInfo& info = type_info(t);
  const int64_t n = static_cast<int64_t>(y.size());
  if (static_cast<int64_t>(blocks.size()) != row_bytes(t, n)) {
    throw std::invalid_argument(std::string("ggml ") + info.name + ": input buffer has the wrong size");
  }
  const int64_t nb = n / info.block;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* xb = blocks.data() + b * info.block_bytes;
    float* yb = y.data() + b * info.block;
    switch (t) {
      case Type::kF32: std::memcpy(yb, xb, 4); break;
      case Type::kF16: *yb = load_half(xb); break;
      case Type::kQ8_0: dequantize_q8_0(xb, yb); break;
      case Type::kQ4_0: dequantize_q4_0(xb, yb); break;
      case Type::kQ4_K: dequantize_q4_K(xb, yb); break;
      case Type::kQ5_K: dequantize_q5_K(xb, yb); break;
      case Type::kQ6_K: dequantize_q6_K(xb, yb); break;
      case Type::kQ8_K: throw std::invalid_argument("q8_K holds activations only");
    }
  }
}

void fake_quant_activation_row(Type weight, std::span<float> x) {
  const Type a = type_info(weight).vec_dot_type;
  const int64_t n = static_cast<int64_t>(x.size());
  switch (a) {
    case Type::kF32: return;
    case Type::kF16:
      for (float& v : x) v = fp16_to_fp32(fp32_to_fp16(v));
      return;
    case Type::kQ8_0:
      row_bytes(Type::kQ8_0, n);  // checks the length
      for (int64_t b = 0; b < n; b += kQK) fake_act_q8_0(x.data() + b);
      return;
    case Type::kQ8_K:
      row_bytes(Type::kQ8_K, n);
      for (int64_t b = 0; b < n; b += kQKK) fake_act_q8_K(x.data() + b);
      return;
    default:
      throw std::invalid_argument("no activation quantizer for this ggml type");
  }
}

}  // namespace jointnas::quant::ggml
