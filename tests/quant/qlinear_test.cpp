// QuantLinear on the CPU against linear_ref (issue 3, acceptance 2 and 5: every format has a CPU
// path, checked over a shape sweep with M in {1, 3, 16, 17, 128, 2048}).
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/kernels/fused.h"
#include "jointnas/quant/qlinear.h"
#include "jointnas/quant/quantizing_producers.h"
#include "linear_bound.h"

namespace jointnas::quant {
namespace {

// CPU paths: weight-only formats multiply by the dequantized weight cached in the compute dtype
// (rounded once), BLAS accumulates in fp32; w8a8 / fp8 accumulate exactly / in fp32.
constexpr testing::PathTraits kCpu{/*weight_rounded=*/true, false, false};

TEST(QuantLinearCpu, MatchesReferenceOverShapeSweep) {
  at::manual_seed(3);
  for (const QuantFormat& f : formats()) {
    if (f.weight == WeightType::kGgml) continue;  // K in whole blocks: ggml_format_test.cpp
    for (c10::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      for (auto [N, K] : {std::pair<int64_t, int64_t>{40, 96}, {37, 172}, {48, 256}}) {
        const at::Tensor w = at::randn({N, K}) * 0.05;
        const QuantizedWeight qw = quantize_ref(w, f);
        const QuantLinear lin = QuantLinear::quantize(w, f, at::kCPU, dt);
        for (int64_t M : {1, 3, 16, 17, 128, 2048}) {
          const at::Tensor x = at::randn({M, K}).to(dt);
          const at::Tensor y = lin.forward(x);
          ASSERT_EQ(y.scalar_type(), dt);
          const at::Tensor ref = f.quantized() ? linear_ref(x, qw, at::kDouble)
                                               : at::matmul(x.to(at::kDouble), w.to(dt).to(at::kDouble).t());
          EXPECT_TRUE(testing::within_bound(y, ref, testing::linear_bound(x, qw, ref, dt, kCpu)))
              << f.name << " " << dt << " M=" << M << " N=" << N << " K=" << K << " path "
              << lin.path_for(M);
        }
      }
    }
  }
}

TEST(QuantLinearCpu, ForwardAddAndBatchShapes) {
  for (const QuantFormat& f : formats()) {
    if (f.weight == WeightType::kGgml) continue;  // K in whole blocks: ggml_format_test.cpp
    const at::Tensor w = at::randn({24, 64}) * 0.05;
    const QuantLinear lin = QuantLinear::quantize(w, f, at::kCPU, at::kFloat);
    const at::Tensor x = at::randn({2, 5, 64});
    const at::Tensor r = at::randn({2, 5, 24});
    const at::Tensor y = lin.forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 24}));
    EXPECT_TRUE(at::equal(lin.forward_add(x, r), r + y)) << f.name;
    EXPECT_TRUE(at::equal(y.reshape({10, 24}), lin.forward(x.reshape({10, 64})))) << f.name;
  }
}

// A linear that quantizes its input takes it already quantized (from a producer): bitwise the
// forward of the unquantized x, with and without the residual, at any leading shape. The
// producers on the CPU are the reference pair. Wrong codes are refused with the reason.
TEST(QuantLinearCpu, QuantizedInputIsBitwiseForward) {
  at::manual_seed(5);
  for (const QuantFormat& f : formats()) {
    if (f.weight == WeightType::kGgml) continue;  // K in whole blocks: ggml_format_test.cpp
    const at::Tensor w = at::randn({24, 64}) * 0.05;
    const QuantLinear lin = QuantLinear::quantize(w, f, at::kCPU, at::kBFloat16);
    const at::Tensor x = at::randn({2, 5, 64}).to(at::kBFloat16);
    if (f.act == ActType::kNone) {
      EXPECT_FALSE(producer_quantizes_input(f, at::kCUDA, at::kBFloat16)) << f.name;
      const QuantizedAct qa = quantize_act_ref(x, find_format("w8a8"));
      EXPECT_THROW(lin.forward(qa), c10::Error) << f.name;
      continue;
    }
    EXPECT_TRUE(producer_quantizes_input(f, at::kCUDA, at::kBFloat16)) << f.name;
    EXPECT_FALSE(producer_quantizes_input(f, at::kCPU, at::kBFloat16)) << f.name;
    EXPECT_FALSE(producer_quantizes_input(f, at::kCUDA, at::kFloat)) << f.name;
    const QuantizedAct qa = quantize_act_ref(x, f);
    const at::Tensor r = at::randn({2, 5, 24}).to(at::kBFloat16);
    EXPECT_TRUE(at::equal(lin.forward(qa), lin.forward(x))) << f.name;
    EXPECT_TRUE(at::equal(lin.forward_add(qa, r), lin.forward_add(x, r))) << f.name;
    const at::Tensor norm_w = at::randn({64}).to(at::kBFloat16);
    const QuantizedAct n = rms_norm_quantized(x, norm_w, 1e-5, f);
    const QuantizedAct n_ref = quantize_act_ref(kernels::rms_norm_ref(x, norm_w, 1e-5), f);
    EXPECT_TRUE(at::equal(n.q.to(at::kFloat), n_ref.q.to(at::kFloat)) && at::equal(n.scale, n_ref.scale)) << f.name;
    const at::Tensor gu = at::randn({2, 5, 128}).to(at::kBFloat16);
    const QuantizedAct s = silu_mul_quantized(gu, f);
    const QuantizedAct s_ref = quantize_act_ref(kernels::silu_mul_ref(gu), f);
    ASSERT_EQ(s.q.sizes(), (std::vector<int64_t>{2, 5, 64}));
    EXPECT_TRUE(at::equal(s.q.to(at::kFloat), s_ref.q.to(at::kFloat)) && at::equal(s.scale, s_ref.scale)) << f.name;
    const at::Tensor attn = at::randn({2, 4, 5, 16}).to(at::kBFloat16);  // [B, nh, T, hd]
    const QuantizedAct o = attention_output_quantized(attn, f);
    const QuantizedAct o_ref = quantize_act_ref(attn.transpose(1, 2).reshape({2, 5, 64}), f);
    ASSERT_EQ(o.q.sizes(), (std::vector<int64_t>{2, 5, 64}));
    EXPECT_TRUE(at::equal(o.q.to(at::kFloat), o_ref.q.to(at::kFloat)) && at::equal(o.scale, o_ref.scale)) << f.name;
    // Codes of the other 8-bit type, a wrong width, or scales that do not match the rows.
    const QuantFormat& other = find_format(f.act == ActType::kInt8PerToken ? "fp8_e4m3" : "w8a8");
    EXPECT_THROW(lin.forward(quantize_act_ref(x, other)), c10::Error) << f.name;
    EXPECT_THROW(lin.forward(quantize_act_ref(at::randn({3, 32}), f)), c10::Error) << f.name;
    EXPECT_THROW(lin.forward(QuantizedAct{qa.q, qa.scale.narrow(1, 0, 2)}), c10::Error) << f.name;
  }
}

TEST(QuantLinearCpu, WeightBytesFollowTheFormat) {
  const at::Tensor w = at::randn({256, 512});
  EXPECT_EQ(QuantLinear::quantize(w, find_format("bf16"), at::kCPU, at::kBFloat16).weight_bytes(),
            256 * 512 * 2);
  // int4: half a byte per weight + bf16 scale and uint8 zero per group of 128.
  EXPECT_EQ(QuantLinear::quantize(w, find_format("w4a16_g128"), at::kCPU, at::kFloat).weight_bytes(),
            256 * 256 + 256 * 4 * 3);
  EXPECT_EQ(QuantLinear::quantize(w, find_format("fp8_e4m3"), at::kCPU, at::kFloat).weight_bytes(),
            256 * 512 + 256 * 4);
  EXPECT_THROW(QuantLinear::quantize(w, find_format("w8a8"), at::kCPU, at::kFloat).forward(at::randn({2, 3})),
               c10::Error);
}

}  // namespace
}  // namespace jointnas::quant
