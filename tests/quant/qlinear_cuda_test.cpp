// QuantLinear on CUDA against linear_ref (issue 3, acceptance 2): every format, every path the
// dispatcher takes, M in {1, 3, 16, 17, 128, 2048}, K and N not multiples of the kernels' tiles
// where the format allows. Bounds are derived in linear_bound.h; the path decides the traits.
#include <cmath>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/kernels/fused.h"
#include "jointnas/quant/qlinear.h"
#include "jointnas/quant/quantize.h"
#include "jointnas/quant/quantizing_producers.h"
#include "linear_bound.h"

namespace jointnas::quant {
namespace {

testing::PathTraits traits_of(const std::string& path) {
  testing::PathTraits p;
  // dequantize + cuBLAS rounds the weight to bf16, and cuBLAS (like gemv_bf16|cublas for the
  // unquantized format at M > 1) may reduce split-K partials in bf16.
  p.weight_rounded = path == "dequant+cublas";
  p.reduced_reduction = path == "dequant+cublas" || path == "gemv_bf16|cublas";
  p.fp8_tensor_cores = path == "quant_act+scaled_mm";
  return p;
}

TEST(QuantLinearCuda, MatchesReferenceOverShapeSweep) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(11);
  // (N, K): group 32 with N not a multiple of anything; a mid shape whose N is a multiple of 16
  // (fp8 _scaled_mm); an 8B-like K with N = 4100 (not a multiple of 8 rows per block).
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{37, 96}, {1008, 2048}, {4100, 4096}};
  for (const QuantFormat& f : formats()) {
    if (f.weight == WeightType::kGgml) continue;  // K in whole blocks: GgmlFormatsOnCudaMatchReference
    for (auto [N, K] : shapes) {
      const at::Tensor w = (at::randn({N, K}) * 0.05).to(at::kBFloat16).to(at::kFloat);
      const QuantizedWeight qw = quantize_ref(w, f);
      const QuantLinear lin = QuantLinear::quantize(w.cuda(), f, at::kCUDA, at::kBFloat16);
      for (int64_t M : {1, 3, 16, 17, 128, 2048}) {
        const at::Tensor x = at::randn({M, K}).to(at::kBFloat16);
        const at::Tensor y = lin.forward(x.cuda());
        ASSERT_EQ(y.scalar_type(), at::kBFloat16);
        const at::Tensor ref = linear_ref(x, qw, at::kDouble);
        const std::string path = lin.path_for(M);
        EXPECT_TRUE(testing::within_bound(y, ref, testing::linear_bound(x, qw, ref, at::kBFloat16,
                                                                        traits_of(path))))
            << f.name << " M=" << M << " N=" << N << " K=" << K << " path " << path;
      }
    }
  }
}

// ggml's formats on a CUDA layer of dtype bf16 (a llama.cpp-target model evaluated on the GPU):
// products and sums in fp32 like ggml-cpu, one rounding to bf16. Against linear_ref (the same
// operands, double): fp32 summation, K 2^-24 sum_k |x'_k w'_k| (Higham's gamma_K), times
// (1 + 2^-8) through the final bf16 rounding, plus that rounding, 2^-8 |ref|.
TEST(QuantLinearCuda, GgmlFormatsOnCudaMatchReference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(12);
  for (const QuantFormat& f : formats()) {
    if (f.weight != WeightType::kGgml) continue;
    for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{37, 256}, {1008, 2048}}) {
      const at::Tensor w = at::randn({N, K}) * 0.05;
      const QuantizedWeight qw = quantize_ref(w, f);
      const QuantLinear lin = QuantLinear::quantize(w.cuda(), f, at::kCUDA, at::kBFloat16);
      for (int64_t M : {1, 17, 128}) {
        const at::Tensor x = at::randn({M, K}).to(at::kBFloat16);
        const at::Tensor y = lin.forward(x.cuda());
        ASSERT_EQ(y.scalar_type(), at::kBFloat16);
        const at::Tensor ref = linear_ref(x, qw, at::kDouble);
        const at::Tensor mag = at::matmul(ggml_fake_act(x.to(at::kFloat), f).abs().to(at::kDouble),
                                          dequantize_ref(qw, at::kFloat).abs().to(at::kDouble).t());
        const double u = std::ldexp(1.0, -8);
        const at::Tensor bound = mag * (static_cast<double>(K) * std::ldexp(1.0, -24) * (1 + u)) + ref.abs() * u;
        EXPECT_TRUE(testing::within_bound(y, ref, bound)) << f.name << " M=" << M << " N=" << N << " K=" << K;
      }
    }
  }
}

// The fused residual epilogue (GEMV paths at M <= 4) equals residual + forward(x) rounded the
// same way: bf16(r + bf16(y)).
TEST(QuantLinearCuda, ForwardAddMatchesUnfused) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (const QuantFormat& f : formats()) {
    const at::Tensor w = at::randn({4096, 1024}, at::kCUDA) * 0.05;
    const QuantLinear lin = QuantLinear::quantize(w, f, at::kCUDA, at::kBFloat16);
    for (int64_t M : {1, 4, 17}) {
      const at::Tensor x = at::randn({M, 1024}, at::kCUDA).to(at::kBFloat16);
      const at::Tensor r = at::randn({M, 4096}, at::kCUDA).to(at::kBFloat16);
      EXPECT_TRUE(at::equal(lin.forward_add(x, r), r + lin.forward(x)))
          << f.name << " M=" << M << " path " << lin.path_for(M);
    }
  }
}

// From codes a producer wrote (forward(QuantizedAct)): bitwise forward(x) on every path of the
// formats that quantize activations (GEMV at M <= 4, _int_mm padded below 17 rows, _int_mm,
// _scaled_mm), with the residual too; and the fused RMSNorm producer feeds it the same codes.
TEST(QuantLinearCuda, QuantizedInputIsBitwiseForward) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(13);
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    const QuantLinear lin = QuantLinear::quantize(at::randn({1024, 4096}, at::kCUDA) * 0.02, f, at::kCUDA,
                                                  at::kBFloat16);
    const at::Tensor norm_w = (1 + 0.2 * at::randn({4096}, at::kCUDA)).to(at::kBFloat16);
    for (int64_t M : {1, 3, 16, 17, 2048}) {
      const at::Tensor x = at::randn({1, M, 4096}, at::kCUDA).to(at::kBFloat16);
      const at::Tensor r = at::randn({1, M, 1024}, at::kCUDA).to(at::kBFloat16);
      const QuantizedAct qa = rms_norm_quantized(x, norm_w, 1e-5, f);
      ASSERT_EQ(qa.q.sizes(), x.sizes());
      const at::Tensor h = kernels::rms_norm(x, norm_w, 1e-5);
      EXPECT_TRUE(at::equal(lin.forward(qa), lin.forward(h))) << name << " M=" << M << " " << lin.path_for(M);
      EXPECT_TRUE(at::equal(lin.forward_add(qa, r), lin.forward_add(h, r))) << name << " M=" << M;
    }
  }
}

TEST(QuantLinearCuda, PathsAreTheRealKernels) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor w = at::randn({4096, 4096}, at::kCUDA);
  auto path = [&](const char* f, int64_t m) {
    return QuantLinear::quantize(w, find_format(f), at::kCUDA, at::kBFloat16).path_for(m);
  };
  EXPECT_EQ(path("w4a16_g128", 1), "gemv_w4a16");
  EXPECT_EQ(path("w8a16", 1), "gemv_w8a16");
  EXPECT_EQ(path("w8a8", 1), "quant_act+gemv_w8a8");
  EXPECT_EQ(path("w8a8", 2048), "quant_act+int_mm+epilogue");
  EXPECT_EQ(path("fp8_e4m3", 1), "quant_act+gemv_fp8");
  EXPECT_EQ(path("fp8_e4m3", 2048), "quant_act+scaled_mm");
  EXPECT_EQ(path("w4a16_g128", 2048), "dequant+cublas");
}

}  // namespace
}  // namespace jointnas::quant
