// Issue 24: ggml's formats as registry rows: fake quant == dequantize_ref(quantize_ref) bitwise,
// the packed layout (ggml's blocks) round-trips, the straight-through gradient, the activation
// fake quant, QuantLinear against linear_ref, the storage numbers, and refused widths.
#include <cmath>
#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/ggml_quants.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/qlinear.h"
#include "jointnas/quant/quantize.h"

#if JNAS_HAVE_LLAMA_CPP
#include <ggml-cpu.h>
#include <ggml.h>
#endif

namespace jointnas::quant {
namespace {

std::vector<const QuantFormat*> ggml_formats() {
  std::vector<const QuantFormat*> v;
  for (const QuantFormat& f : formats()) {
    if (f.weight == WeightType::kGgml) v.push_back(&f);
  }
  return v;
}

std::vector<at::Tensor> cases(int64_t n, int64_t k) {
  at::manual_seed(24);
  at::Tensor outlier = at::randn({n, k}) * 0.01;
  outlier.select(1, k / 3).fill_(1e3);
  return {at::randn({n, k}) * 0.02, at::zeros({n, k}), at::full({n, k}, -0.37), outlier,
          at::randn({n, k}) * 1e-40, at::randn({n, k}) * at::logspace(-6, 3, n).unsqueeze(1)};
}

TEST(GgmlFormat, RegistryRows) {
  EXPECT_EQ(ggml_formats().size(), 6u);
  // Storage from ggml's blocks: q8_0 34 bytes / 32, q4_K 144 / 256, q6_K 210 / 256.
  EXPECT_DOUBLE_EQ(find_format("q8_0").bits_per_weight(4096), 8.5);
  EXPECT_DOUBLE_EQ(find_format("q4_0").bits_per_weight(4096), 4.5);
  EXPECT_DOUBLE_EQ(find_format("q4_k").bits_per_weight(4096), 4.5);
  EXPECT_DOUBLE_EQ(find_format("q5_k").bits_per_weight(4096), 5.5);
  EXPECT_DOUBLE_EQ(find_format("q6_k").bits_per_weight(4096), 6.5625);
  EXPECT_DOUBLE_EQ(find_format("f16").bits_per_weight(4096), 16.0);
  EXPECT_EQ(find_format("q4_k").weight_bytes(3, 512), 3 * 288);
  EXPECT_EQ(find_format("q4_k").group_for(512), 512);
  EXPECT_EQ(find_format("q6_k").block(), 256);
  EXPECT_EQ(find_format("bf16").gguf_nearest, std::string("f16"));
}

TEST(GgmlFormat, FakeQuantEqualsDequantQuantBitwise) {
  for (const QuantFormat* f : ggml_formats()) {
    for (const at::Tensor& w32 : cases(12, 512)) {
      for (c10::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        const at::Tensor w = w32.to(dt);
        const at::Tensor fq = fake_quant(w, *f);
        const QuantizedWeight qw = quantize_ref(w, *f);
        ASSERT_EQ(qw.q.scalar_type(), at::kByte);
        ASSERT_EQ(qw.q.size(1), f->weight_bytes(1, 512));
        EXPECT_TRUE(at::equal(fq, dequantize_ref(qw, dt))) << f->name << " " << dt;
        // Packed == ggml's blocks; the round trip is the identity.
        const PackedWeight p = pack(qw);
        EXPECT_EQ(p.in_features, 512);
        EXPECT_TRUE(at::equal(unpack(p).q, qw.q)) << f->name;
        EXPECT_FALSE(p.scale.defined());
      }
    }
  }
}

TEST(GgmlFormat, StraightThroughGradientAndActivations) {
  for (const QuantFormat* f : ggml_formats()) {
    at::Tensor w = (at::randn({8, 256}) * 0.1).set_requires_grad(true);
    at::Tensor g = at::randn({8, 256});
    (fake_quant(w, *f) * g).sum().backward();
    EXPECT_TRUE(at::equal(w.grad(), g)) << f->name;
    at::Tensor x = at::randn({3, 5, 256}).set_requires_grad(true);
    const at::Tensor fx = fake_quant_act(x, *f);
    // Row by row as ggml_quants quantizes an activation row.
    at::Tensor want = x.detach().clone().reshape({15, 256}).contiguous();
    for (int64_t r = 0; r < 15; ++r) {
      float* p = want.data_ptr<float>() + r * 256;
      ggml::fake_quant_activation_row(static_cast<ggml::Type>(f->ggml_type), {p, 256});
    }
    EXPECT_TRUE(at::equal(fx.detach(), want.reshape({3, 5, 256}))) << f->name;
    fx.sum().backward();
    EXPECT_TRUE(at::equal(x.grad(), at::ones_like(x))) << f->name;
  }
}

// QuantLinear (dequantized weight cached, activations fake-quantized, fp32 BLAS) against
// linear_ref (the same operands, products and sums in double). Bound: fp32 summation of K products
// of exactly representable operands, |err| <= K * 2^-24 * sum_k |x'_k w'_k| (Higham's gamma_K),
// plus the final rounding to fp32 (2^-24 |y|).
TEST(GgmlFormat, QuantLinearMatchesReference) {
  for (const QuantFormat* f : ggml_formats()) {
    for (int64_t K : {256, 768}) {
      const at::Tensor w = at::randn({40, K}) * 0.05;
      const QuantizedWeight qw = quantize_ref(w, *f);
      const QuantLinear lin = QuantLinear::quantize(w, *f, at::kCPU, at::kFloat);
      for (int64_t M : {1, 7, 64}) {
        const at::Tensor x = at::randn({M, K});
        const at::Tensor y = lin.forward(x).to(at::kDouble);
        const at::Tensor ref = linear_ref(x, qw, at::kDouble);
        const at::Tensor absdot = at::matmul(ggml_fake_act(x, *f).abs().to(at::kDouble),
                                             dequantize_ref(qw, at::kFloat).abs().to(at::kDouble).t());
        const at::Tensor bound = absdot * (K * std::ldexp(1.0, -24)) + ref.abs() * std::ldexp(1.0, -24);
        EXPECT_EQ(((y - ref).abs() > bound).sum().item<int64_t>(), 0)
            << f->name << " K=" << K << " M=" << M << " path " << lin.path_for(M);
      }
    }
  }
}

TEST(GgmlFormat, RefusesRowsThatAreNotWholeBlocks) {
  try {
    quantize_ref(at::randn({4, 384}), find_format("q4_k"));
    FAIL() << "K = 384 was accepted for q4_k";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("multiple of 256"), std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_THROW(fake_quant(at::randn({4, 48}), find_format("q8_0")), c10::Error);
  EXPECT_NO_THROW(fake_quant(at::randn({4, 384}), find_format("q8_0")));
}


#if JNAS_HAVE_LLAMA_CPP
// QuantLinear against ggml-cpu's own mul_mat on the same blocks (ggml_graph_compute, 1 thread):
// the activations are quantized alike, so only fp32 summation order differs. Bound as above,
// with both sides' summations: 2 K 2^-24 sum |x' w'|.
TEST(GgmlFormat, QuantLinearMatchesGgmlCpuMatmul) {
  ggml_cpu_init();
  for (const QuantFormat* f : ggml_formats()) {
    const int64_t N = 48, K = 512, M = 16;
    const at::Tensor w = at::randn({N, K}) * 0.05;
    const at::Tensor x = at::randn({M, K});
    const QuantizedWeight qw = quantize_ref(w, *f);
    const QuantLinear lin = QuantLinear::quantize(w, *f, at::kCPU, at::kFloat);
    ggml_init_params ip{size_t{64} << 20, nullptr, false};
    ggml_context* ctx = ggml_init(ip);
    ggml_tensor* a = ggml_new_tensor_2d(ctx, static_cast<ggml_type>(f->ggml_type), K, N);
    std::memcpy(a->data, qw.q.data_ptr<uint8_t>(), ggml_nbytes(a));
    ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, M);
    std::memcpy(b->data, x.contiguous().data_ptr<float>(), ggml_nbytes(b));
    ggml_tensor* c = ggml_mul_mat(ctx, a, b);
    ggml_cgraph* gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, c);
    ggml_graph_compute_with_ctx(ctx, gf, 1);
    const at::Tensor y_ggml = at::from_blob(c->data, {M, N}, at::kFloat).clone().to(at::kDouble);
    ggml_free(ctx);
    const at::Tensor y = lin.forward(x).to(at::kDouble);
    const at::Tensor absdot = at::matmul(ggml_fake_act(x, *f).abs().to(at::kDouble),
                                         dequantize_ref(qw, at::kFloat).abs().to(at::kDouble).t());
    const at::Tensor bound = absdot * (2 * K * std::ldexp(1.0, -24));
    const double worst = ((y - y_ggml).abs() / bound).max().item<double>();
    EXPECT_LE(worst, 1.0) << f->name << ": max |diff| / bound " << worst << ", max |diff| "
                          << (y - y_ggml).abs().max().item<double>();
  }
}
#endif

}  // namespace
}  // namespace jointnas::quant
