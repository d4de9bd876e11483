// Registry, reference quantizers, fake-quant and pack/unpack: the invariants of issue 3,
// acceptance 1 (bitwise fake-quant == dequant(quant), bitwise pack round trip, half-step error).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/quantize.h"
#include "jointnas/quant/scale_division.h"

namespace jointnas::quant {
namespace {

// Random and adversarial weights: normal, all zeros, constant rows of either sign, one huge
// outlier per row, tiny (1e-30) and subnormal (1e-40) values, a mix of scales across rows.
std::vector<std::pair<std::string, at::Tensor>> weight_cases(int64_t n, int64_t k) {
  at::manual_seed(7);
  std::vector<std::pair<std::string, at::Tensor>> c;
  c.emplace_back("normal", at::randn({n, k}) * 0.02);
  c.emplace_back("zeros", at::zeros({n, k}));
  at::Tensor constant = at::ones({n, k}) * 0.37;
  constant.narrow(0, 0, n / 2).mul_(-3.0);
  c.emplace_back("constant_rows", constant);
  at::Tensor outlier = at::randn({n, k}) * 0.01;
  outlier.select(1, k / 3).fill_(1e4);
  outlier.select(1, k - 1).fill_(-2e3);
  c.emplace_back("outliers", outlier);
  c.emplace_back("tiny", at::randn({n, k}) * 1e-30);
  c.emplace_back("subnormal", at::randn({n, k}) * 1e-40);
  c.emplace_back("row_scales", at::randn({n, k}) * at::logspace(-6, 3, n).unsqueeze(1));
  at::Tensor positive = at::rand({n, k}) + 0.5;  // asymmetric grids: range [0, max]
  c.emplace_back("positive", positive);
  return c;
}

// jointnas's own quantized formats (ggml's blocks need K in whole blocks: ggml_format_test.cpp).
std::vector<const QuantFormat*> quantized_formats() {
  std::vector<const QuantFormat*> v;
  for (const QuantFormat& f : formats()) {
    if (f.quantized() && f.weight != WeightType::kGgml) v.push_back(&f);
  }
  return v;
}

TEST(QuantFormat, RegistryNamesAndGroupRule) {
  EXPECT_EQ(format_names(), "bf16, w8a16, w4a16_g128, w8a8, fp8_e4m3, f16, q8_0, q4_0, q4_k, q5_k, q6_k");
  EXPECT_THROW(find_format("int3"), ConfigError);
  const QuantFormat& w4 = find_format("w4a16_g128");
  EXPECT_EQ(w4.group_for(4096), 128);
  EXPECT_EQ(w4.group_for(14336), 128);
  EXPECT_EQ(w4.group_for(64), 64);    // stories260K hidden size
  EXPECT_EQ(w4.group_for(96), 32);
  EXPECT_EQ(w4.group_for(192), 64);
  EXPECT_EQ(w4.group_for(172), 172);  // stories260K intermediate size: one group per row
  EXPECT_EQ(find_format("w8a16").group_for(4096), 4096);
  // 4 bits + (16-bit scale + 8-bit zero) / 128.
  EXPECT_DOUBLE_EQ(w4.bits_per_weight(4096), 4.0 + 24.0 / 128.0);
  EXPECT_DOUBLE_EQ(find_format("w8a8").bits_per_weight(4096), 8.0 + 32.0 / 4096.0);
  EXPECT_DOUBLE_EQ(find_format("bf16").bits_per_weight(4096), 16.0);
  EXPECT_EQ(w4.qmin(), 0);
  EXPECT_EQ(w4.qmax(), 15);
  EXPECT_EQ(find_format("w8a16").qmin(), -127);
}

TEST(QuantRef, FakeQuantEqualsDequantQuantBitwise) {
  for (const QuantFormat* f : quantized_formats()) {
    for (int64_t k : {256, 96, 172}) {
      for (auto& [name, w32] : weight_cases(24, k)) {
        for (c10::ScalarType dt : {at::kFloat, at::kBFloat16}) {
          const at::Tensor w = w32.to(dt);
          const at::Tensor fq = fake_quant(w, *f);
          const at::Tensor dq = dequantize_ref(quantize_ref(w, *f), dt);
          ASSERT_EQ(fq.scalar_type(), dt);
          EXPECT_TRUE(at::equal(fq, dq)) << f->name << " " << name << " K=" << k << " " << dt;
        }
      }
    }
  }
}

TEST(QuantRef, PackUnpackRoundTripBitwise) {
  for (const QuantFormat* f : quantized_formats()) {
    for (auto& [name, w] : weight_cases(10, 96)) {
      const QuantizedWeight qw = quantize_ref(w, *f);
      const PackedWeight p = pack(qw);
      const QuantizedWeight back = unpack(p);
      EXPECT_TRUE(at::equal(back.q.to(at::kFloat), qw.q.to(at::kFloat))) << f->name << " " << name;
      EXPECT_TRUE(at::equal(pack(back).data.view(at::kByte), p.data.view(at::kByte))) << f->name;
      if (f->weight_bits == 4) {
        EXPECT_EQ(p.data.size(1), 48);
      }
    }
  }
  // Symmetric int4 (not a registry row today) round-trips the negative nibbles too.
  QuantFormat s4 = find_format("w4a16_g128");
  s4.asymmetric = false;
  const QuantizedWeight qw = quantize_ref(at::randn({8, 64}), s4);
  EXPECT_LT(qw.q.min().item<int>(), 0);
  EXPECT_TRUE(at::equal(unpack(pack(qw)).q, qw.q));
}

// |w - dequant(quant(w))| <= step / 2 per element. Integer formats: step = the group's scale;
// the dequantized value is the fp32 product, compared in double, with 2^-22 relative slack for
// the fp32 division w / s and the fp32 product q * s. fp8: step = the e4m3 spacing at |w / s|
// (2^(e - 3) for |v| in [2^e, 2^(e+1)), 2^-9 in the subnormal range), in units of s. Plus one
// fp32 subnormal spacing (2^-149) absolute: a product q * s in the subnormal range rounds there.
TEST(QuantRef, ErrorWithinHalfStep) {
  for (const QuantFormat* f : quantized_formats()) {
    for (auto& [name, w] : weight_cases(16, 256)) {
      const QuantizedWeight qw = quantize_ref(w, *f);
      const int64_t N = w.size(0), K = w.size(1), g = qw.group;
      at::Tensor s = qw.scale.to(at::kDouble).repeat_interleave(g, 1);  // [N, K]
      at::Tensor w64 = w.to(at::kDouble);
      at::Tensor err = (w64 - dequantize_ref(qw, at::kFloat).to(at::kDouble)).abs();
      at::Tensor step;
      if (f->weight == WeightType::kFp8E4M3) {
        at::Tensor v = (w64 / s).abs();
        at::Tensor e = at::floor(at::log2(at::clamp_min(v, 1e-300))).clamp_min(-6);
        step = at::pow(2.0, e - 3) * s;
      } else {
        step = s;
      }
      at::Tensor bound = step * 0.5 * (1 + std::ldexp(1.0, -22)) + w64.abs() * std::ldexp(1.0, -22) +
                         std::ldexp(1.0, -149);
      at::Tensor bad = err > bound;
      EXPECT_EQ(bad.sum().item<int64_t>(), 0)
          << f->name << " " << name << ": worst err " << (err - bound).max().item<double>()
          << " (N=" << N << ", K=" << K << ")";
    }
  }
}

TEST(QuantRef, ActivationsPerTokenHalfStepAndFakeQuantBitwise) {
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    for (auto& [cname, x32] : weight_cases(12, 96)) {
      for (c10::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        const at::Tensor x = x32.to(dt).reshape({3, 4, 96});
        const QuantizedAct qa = quantize_act_ref(x, f);
        ASSERT_EQ(qa.scale.sizes(), (std::vector<int64_t>{3, 4, 1}));
        EXPECT_TRUE(at::equal(fake_quant_act(x, f), dequantize_act_ref(qa, dt))) << name << cname;
        if (f.act == ActType::kInt8PerToken) {
          at::Tensor err = (x.to(at::kDouble) - dequantize_act_ref(qa, at::kFloat).to(at::kDouble)).abs();
          at::Tensor bound = qa.scale.to(at::kDouble) * 0.5 * (1 + std::ldexp(1.0, -22)) +
                             x.to(at::kDouble).abs() * std::ldexp(1.0, -22) + std::ldexp(1.0, -149);
          EXPECT_EQ((err > bound).sum().item<int64_t>(), 0) << cname;
        }
      }
    }
  }
  EXPECT_TRUE(at::equal(fake_quant_act(at::ones({2, 3}), find_format("w4a16_g128")), at::ones({2, 3})));
}

// Straight-through: the gradient is the incoming gradient inside the clipping range. With scales
// from the tensor itself every element is inside, so d(sum)/dw is exactly 1.
TEST(QuantRef, StraightThroughGradient) {
  for (const QuantFormat* f : quantized_formats()) {
    at::Tensor w = (at::randn({8, 128}) * 0.1).set_requires_grad(true);
    at::Tensor g_out = at::randn({8, 128});
    (fake_quant(w, *f) * g_out).sum().backward();
    EXPECT_TRUE(at::equal(w.grad(), g_out)) << f->name;
    if (f->act != ActType::kNone) {
      at::Tensor x = at::randn({5, 128}).set_requires_grad(true);
      fake_quant_act(x, *f).sum().backward();
      EXPECT_TRUE(at::equal(x.grad(), at::ones_like(x))) << f->name;
    }
  }
}

// Slicing invariance (method.md): with group-wise weight scales, quantizing a prefix slice of a
// matrix equals slicing the quantized matrix, when the input width is a multiple of the group.
TEST(QuantRef, GroupwiseQuantizationCommutesWithPrefixSlicing) {
  const QuantFormat& w4 = find_format("w4a16_g128");
  at::Tensor w = at::randn({96, 512});
  at::Tensor full = fake_quant(w, w4);
  for (int64_t o : {32, 96}) {
    for (int64_t i : {128, 384}) {
      at::Tensor sliced = w.narrow(0, 0, o).narrow(1, 0, i).contiguous();
      EXPECT_TRUE(at::equal(fake_quant(sliced, w4), full.narrow(0, 0, o).narrow(1, 0, i)));
    }
  }
}

TEST(QuantRef, BadInputsThrow) {
  EXPECT_THROW(quantize_ref(at::randn({4}), find_format("w8a16")), c10::Error);
  EXPECT_THROW(quantize_ref(at::ones({4, 4}, at::kInt), find_format("w8a16")), c10::Error);
  EXPECT_THROW(pack(quantize_ref(at::randn({4, 33}), find_format("w4a16_g128"))), c10::Error);
  EXPECT_THROW(quantize_act_ref(at::randn({2, 4}), find_format("w8a16")), c10::Error);
}

}  // namespace
}  // namespace jointnas::quant

namespace jointnas::quant {
namespace {

// The activation quantizers' division through the reciprocal (scale_division.h, what the CUDA
// kernels run) against the IEEE quotient, exhaustively: every positive finite bf16 amax, every
// bf16 v in [0, amax], s = amax / qmax as the quantizers compute it. Where either quotient could
// give a nonzero code (|q| >= 2^-11) they must be the same float. Negative v mirror positive v
// (every step rounds symmetrically); -0 keeps its sign. About 5e8 pairs per qmax.
TEST(ScaleDivision, MatchesIeeeDivisionWhereverACodeCouldBeNonzero) {
  auto bf16 = [](uint32_t b) {
    const uint32_t u = b << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  };
  for (const float qmax : {127.0f, kFp8E4M3Max}) {
    int64_t pairs = 0, differ = 0, slow_rows = 0;
    for (uint32_t a = 1; a < 0x7F80; ++a) {
      const float amax = bf16(a);
      const float s = amax / qmax;
      const ScaleDivision div(s);
      slow_rows += !div.fast && amax >= 0x1p-90f;
      for (uint32_t b = 0; b <= a; ++b) {
        const float v = bf16(b);
        const float want = v / s, got = div(v);
        ++pairs;
        if (std::fabs(want) < 0x1p-11f && std::fabs(got) < 0x1p-11f) continue;
        if (std::memcmp(&want, &got, sizeof want) != 0 && differ++ < 5) {
          ADD_FAILURE() << "qmax " << qmax << " amax " << amax << " v " << v << ": " << got << " vs " << want;
        }
      }
    }
    EXPECT_EQ(differ, 0) << "qmax " << qmax << ", " << pairs << " pairs";
    EXPECT_EQ(slow_rows, 0) << "every amax >= 2^-90 must take the reciprocal path";
    const ScaleDivision div(1.5f);
    EXPECT_TRUE(std::signbit(div(-0.0f)));
    EXPECT_EQ(div(-3.0f), -2.0f);
    EXPECT_TRUE(std::isnan(ScaleDivision(NAN)(1.0f)));
    EXPECT_EQ(ScaleDivision(INFINITY)(1.0f), 0.0f);
  }
}

}  // namespace
}  // namespace jointnas::quant
