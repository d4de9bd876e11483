// QuantLinear on the CPU against linear_ref (issue 3, acceptance 2 and 5: every format has a CPU
// path, checked over a shape sweep with M in {1, 3, 16, 17, 128, 2048}).
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/quant/qlinear.h"

namespace jointnas::quant {
namespace {

double unit_roundoff(c10::ScalarType t) {
  return t == at::kBFloat16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -24);
}

// Elementwise bound for QuantLinear vs linear_ref (double):
//   weight-only: the CPU path multiplies x by the dequantized weight cached in the compute dtype
//     (one rounding per weight: u |w|), accumulates in fp32 in any order (K 2^-24 sum |x w|), and
//     rounds the output once (u |ref|): (u + K 2^-24) (|x| @ |w|^T) + u |ref|.
//   w8a8: the int32 dot is exact; the epilogue makes two fp32 products (2 * 2^-24) and one
//     conversion, then rounds to the compute dtype: (3 * 2^-24 + u) |ref|.
//   fp8: e4m3 products are exact, fp32 accumulation adds K 2^-24 sum |qx qw| sx sw.
// Computed in double; the reference's own final rounding is to double (negligible).
at::Tensor bound(const at::Tensor& x, const QuantizedWeight& qw, const at::Tensor& ref,
                 c10::ScalarType dtype) {
  const QuantFormat& f = *qw.format;
  const int64_t K = qw.q.size(1);
  const double u = unit_roundoff(dtype), acc = K * std::ldexp(1.0, -24);
  if (f.act == ActType::kNone) {
    at::Tensor mag = at::matmul(x.to(at::kDouble).abs(), dequantize_ref(qw, at::kDouble).abs().t());
    return (u + acc) * mag + u * ref.abs();
  }
  at::Tensor b = (3 * std::ldexp(1.0, -24) + u) * ref.abs();
  if (f.act == ActType::kFp8E4M3PerToken) {
    const QuantizedAct qa = quantize_act_ref(x, f);
    at::Tensor mag = at::matmul(qa.q.to(at::kFloat).to(at::kDouble).abs(),
                                qw.q.to(at::kFloat).to(at::kDouble).abs().t()) *
                     qa.scale.to(at::kDouble) * qw.scale.to(at::kDouble).reshape({-1});
    b = b + acc * mag;
  }
  return b;
}

::testing::AssertionResult within(const at::Tensor& y, const at::Tensor& ref, const at::Tensor& b) {
  at::Tensor excess = (y.to(at::kDouble) - ref).abs() - b;
  const int64_t bad = (excess > 0).sum().item<int64_t>();
  if (bad == 0 && y.sizes() == ref.sizes()) return ::testing::AssertionSuccess();
  const int64_t i = excess.reshape({-1}).argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << bad << " of " << y.numel() << " elements out of bound; worst at flat index " << i
         << ": got " << y.reshape({-1})[i].item<double>() << ", ref "
         << ref.reshape({-1})[i].item<double>() << ", bound " << b.reshape({-1})[i].item<double>()
         << " (shape " << y.sizes() << " vs " << ref.sizes() << ")";
}

TEST(QuantLinearCpu, MatchesReferenceOverShapeSweep) {
  at::manual_seed(3);
  for (const QuantFormat& f : formats()) {
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
          EXPECT_TRUE(within(y, ref, bound(x, qw, ref, dt)))
              << f.name << " " << dt << " M=" << M << " N=" << N << " K=" << K << " path "
              << lin.path_for(M);
        }
      }
    }
  }
}

TEST(QuantLinearCpu, ForwardAddAndBatchShapes) {
  for (const QuantFormat& f : formats()) {
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
