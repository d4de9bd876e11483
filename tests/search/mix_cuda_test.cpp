// The fused mixing kernel against quant::fake_quant (the definition of every format's numbers).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/quantize.h"
#include "jointnas/search/mix_cuda.h"
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
      EXPECT_TRUE(at::equal(got, quant::fake_quant_act(x, f))) << name << " K " << K;
    }
  }
}

}  // namespace
}  // namespace jointnas::search
