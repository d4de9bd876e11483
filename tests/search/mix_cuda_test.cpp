// The fused mixing kernel against quant::fake_quant (the definition of every format's numbers).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/quantize.h"
#include "jointnas/search/mix_cuda.h"
#include "jointnas/search/mixed_linear.h"
#include "tensor_assert.h"

namespace jointnas::search {
namespace {

cuda::MixFormat mix_format(const quant::QuantFormat& f, int64_t group, int64_t K) {
  cuda::MixFormat m;
  if (!f.quantized()) return m;
  m.qmin = f.qmin();
  m.qmax = f.weight == quant::WeightType::kFp8E4M3 ? quant::kFp8E4M3Max : static_cast<float>(f.qmax());
  m.kind = f.weight == quant::WeightType::kFp8E4M3 ? cuda::kMixFp8
           : f.asymmetric                          ? cuda::kMixAsymInt
                                                   : cuda::kMixSymInt;
  m.group = static_cast<int>(group == K ? 0 : group);
  return m;
}

// Random rows plus adversarial ones: zeros, a constant row, a large outlier, tiny values.
at::Tensor weights(int64_t N, int64_t K) {
  auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor w = at::randn({N, K}, o) * 0.02;
  w[0].zero_();
  w[1].fill_(0.3);
  w[2][5] = 40.0;
  w[3] = w[3] * 1e-30;
  return w;
}

// One-hot probabilities: the kernel's W_mix is bitwise fake_quant(w) for every format, group and
// width (the ATen path computes it in ~15 fp32 passes; the kernel in one).
TEST(MixCuda, OneFormatIsBitwiseFakeQuant) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (int64_t K : {384, 4096, 14336}) {
    at::Tensor w = weights(40, K);
    for (const auto& f : quant::formats()) {
      // ggml's block formats are not the kernel's (fused_spec refuses them; their mixture is ATen's).
      if (f.weight == quant::WeightType::kGgml) continue;
      for (int64_t group : {f.group_for(K), int64_t{64}, int64_t{32}}) {
        if (!f.allows_group(K, group) && group != f.group_for(K)) continue;
        cuda::MixSpec spec;
        spec.num_formats = 1;
        spec.formats[0] = mix_format(f, group, K);
        at::Tensor p = at::ones({1}, w.options().dtype(at::kFloat));
        at::Tensor got = cuda::mix_weights(w, spec, p);
        at::Tensor want = quant::fake_quant(w, f, group);
        EXPECT_TRUE(at::equal(got, want)) << f.name << " K " << K << " group " << group << " max diff "
                                          << (got.to(at::kFloat) - want.to(at::kFloat)).abs().max().item<float>();
      }
    }
  }
}

// Soft probabilities over all formats (one kernel call, up to 4 formats): the fp32 sum of
// p_f * bf16 values rounded once to bf16, so within half a bf16 ulp of the fp32 reference (bf16
// keeps 8 significant bits: half an ulp is up to 2^-8 relative); the backward sums within fp32 reassociation of K products (1e-5 relative of the sum
// of magnitudes).
TEST(MixCuda, MixtureAndBackwardSums) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t N = 33, K = 4096;
  at::Tensor w = weights(N, K);
  const std::vector<const char*> names = {"bf16", "w8a16", "w4a16_g128", "fp8_e4m3"};
  cuda::MixSpec spec;
  spec.num_formats = 4;
  at::Tensor p = at::softmax(at::randn({4}, w.options().dtype(at::kFloat)), 0);
  at::Tensor ref = at::zeros({N, K}, w.options().dtype(at::kFloat));
  at::Tensor g = at::randn({N, K}, w.options());
  at::Tensor b = at::rand({K}, w.options().dtype(at::kFloat));
  std::vector<at::Tensor> fq;
  for (int i = 0; i < 4; ++i) {
    const auto& f = quant::find_format(names[i]);
    spec.formats[i] = mix_format(f, f.group_for(K), K);
    fq.push_back(quant::fake_quant(w, f, f.group_for(K)).to(at::kFloat));
    ref += p[i] * fq.back();
  }
  at::Tensor sums;
  at::Tensor got = cuda::mix_weights(w, spec, p, &g, &b, &sums);
  JNAS_EXPECT_CLOSE(got.to(at::kFloat), ref, 1e-30, 1.0 / 256);
  for (int i = 0; i < 4; ++i) {
    at::Tensor prod = g.to(at::kFloat) * fq[i] * b;
    at::Tensor want = prod.sum(1);
    at::Tensor scale = prod.abs().sum(1);
    EXPECT_TRUE(((sums.select(1, i) - want).abs() <= scale * 1e-5 + 1e-30).all().item<bool>()) << names[i];
  }
}

// The factorized path quantizes activations with the fused per-token kernels: their dequantized
// values must be bitwise fake_quant_act's (the supernet's definition), on adversarial rows too.
TEST(MixCuda, FusedActivationQuantizerIsBitwiseFakeQuantAct) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (int64_t K : {384, 4096, 14336}) {
    at::Tensor x = weights(64, K) * 50.0;
    for (const char* name : {"w8a8", "fp8_e4m3"}) {
      const auto& f = quant::find_format(name);
      auto [q, s] = f.act == quant::ActType::kInt8PerToken ? quant::cuda::quantize_act_int8(x)
                                                           : quant::cuda::quantize_act_fp8(x);
      at::Tensor got = quant::dequantize_act_ref({q, s}, at::kBFloat16);
      const at::Tensor want = quant::fake_quant_act(x, f);
      EXPECT_TRUE(at::equal(got, want)) << name << " K " << K;
      // The one-pass dequantization the supernet uses gives the same bits.
      EXPECT_TRUE(at::equal(cuda::dequantize_act_bf16(q, s), want)) << name << " K " << K;
    }
  }
}

// The factorized linear on CUDA (fused mixing, fused activation quantizers, one d/dx matmul over
// every format) against its definition written out per format in fp32:
//   y = sum_f p_f Qact_f(x) W'_f^T with W'_f = (a b^T) * FQ_f(W), G_f = g^T Qact_f(x),
//   dx = sum_f p_f g W'_f, dp_f = sum G_f W'_f, da_n = sum_f p_f sum_k G_f FQ_f b, db likewise.
// Bound: the implementation rounds W_mix, (a b^T) * W_mix and G to bf16 (three roundings of
// 2^-9 relative each) and its outputs to bf16 (2^-9), and sums in fp32; so each entry is within
// 2^-6 of the same expression taken over magnitudes (|x|, |W|, |g|, ...), which bounds every
// partial sum.
TEST(MixCuda, FactorizedLinearMatchesItsDefinition) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t T = 48, K = 384, N = 300;
  const auto o = at::TensorOptions().device(at::kCUDA);
  MixedWeight w;
  w.weight = weights(N, K);
  w.row_chunk = 128;  // 3 chunks, the last one partial
  for (const char* name : {"bf16", "w8a16", "w4a16_g128", "w8a8", "fp8_e4m3"}) {
    w.formats.push_back(&quant::find_format(name));
    w.groups.push_back(w.formats.back()->group_for(K));
  }
  w.prepare();
  const int64_t F = static_cast<int64_t>(w.formats.size());
  at::Tensor x = (at::randn({T, K}, o) * 3.0).to(at::kBFloat16).requires_grad_(true);
  at::Tensor p = at::softmax(at::randn({F}, o), 0).requires_grad_(true);
  at::Tensor a = at::rand({N}, o).requires_grad_(true);
  at::Tensor b = at::rand({K}, o).requires_grad_(true);
  at::Tensor g = at::randn({T, N}, o).to(at::kBFloat16);
  at::Tensor y = mixed_linear_factorized(x, w, p, a, b);
  y.backward(g);

  const at::Tensor xf = x.detach().to(at::kFloat), gf = g.to(at::kFloat), pf = p.detach();
  const at::Tensor ab = a.detach().unsqueeze(1) * b.detach().unsqueeze(0);
  at::Tensor y_ref = at::zeros({T, N}, o), y_mag = at::zeros({T, N}, o);
  at::Tensor gx_ref = at::zeros({T, K}, o), gx_mag = at::zeros({T, K}, o);
  at::Tensor gp_ref = at::zeros({F}, o), gp_mag = at::zeros({F}, o);
  at::Tensor ga_ref = at::zeros({N}, o), ga_mag = at::zeros({N}, o);
  at::Tensor gb_ref = at::zeros({K}, o), gb_mag = at::zeros({K}, o);
  for (int64_t f = 0; f < F; ++f) {
    const auto& fmt = *w.formats[f];
    const at::Tensor xq = quant::fake_quant_act(x.detach(), fmt).to(at::kFloat);
    const at::Tensor fq = quant::fake_quant(w.weight, fmt, w.groups[f]).to(at::kFloat);
    const at::Tensor wp = ab * fq, G = at::mm(gf.t(), xq), Gm = at::mm(gf.abs().t(), xq.abs());
    y_ref += pf[f] * at::mm(xq, wp.t());
    y_mag += pf[f] * at::mm(xq.abs(), wp.abs().t());
    gx_ref += pf[f] * at::mm(gf, wp);
    gx_mag += pf[f] * at::mm(gf.abs(), wp.abs());
    gp_ref[f] = (G * wp).sum();
    gp_mag[f] = (Gm * wp.abs()).sum();
    ga_ref += pf[f] * (G * fq * b.detach()).sum(1);
    ga_mag += pf[f] * (Gm * fq.abs() * b.detach()).sum(1);
    gb_ref += pf[f] * (G * fq * a.detach().unsqueeze(1)).sum(0);
    gb_mag += pf[f] * (Gm * fq.abs() * a.detach().unsqueeze(1)).sum(0);
  }
  auto within = [](const at::Tensor& got, const at::Tensor& ref, const at::Tensor& mag, const char* what) {
    const at::Tensor err = (got.to(at::kFloat) - ref).abs();
    EXPECT_TRUE((err <= mag * (1.0 / 64) + 1e-30).all().item<bool>())
        << what << ": worst error / magnitude " << (err / (mag + 1e-30)).max().item<float>();
  };
  within(y.detach(), y_ref, y_mag, "y");
  within(x.grad(), gx_ref, gx_mag, "dx");
  within(p.grad(), gp_ref, gp_mag, "dp");
  within(a.grad(), ga_ref, ga_mag, "da");
  within(b.grad(), gb_ref, gb_mag, "db");
}

}  // namespace
}  // namespace jointnas::search
