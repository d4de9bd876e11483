// The chunked head loss against the unchunked expression built from ATen ops with autograd
// (fp64 on the CPU, so the only differences are summation orders: ~1e-15 relative), and the
// supernet's hidden-state entry points against its logits.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <cmath>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/search/head_loss.h"
#include "jointnas/search/supernet.h"
#include "tiny_llama.h"

namespace jointnas::search {
namespace {

struct Inputs {
  at::Tensor h, head, th, tg;
};

Inputs inputs(int64_t N, int64_t H, int64_t V, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto d = at::TensorOptions().dtype(at::kDouble);
  return {at::randn({N, H}, g, d), at::randn({V, H}, g, d) * 0.7, at::randn({N, H}, g, d),
          at::randint(V, {N}, g, at::TensorOptions().dtype(at::kLong))};
}

// Reference: full logits, KL with at::kl_div semantics, cross entropy.
at::Tensor reference(const Inputs& in, const at::Tensor& h, double T, double kd_w, double ce_w) {
  at::Tensor zs = at::matmul(h, in.head.t()), zt = at::matmul(in.th, in.head.t());
  at::Tensor kd = at::kl_div(at::log_softmax(zs / T, -1), at::log_softmax(zt / T, -1), at::Reduction::Sum, true) *
                  (T * T / static_cast<double>(h.size(0)));
  at::Tensor ce = at::cross_entropy_loss(zs, in.tg);
  return kd_w * kd + ce_w * ce;
}

TEST(HeadLoss, ChunkedEqualsUnchunkedValueAndGradient) {
  for (int64_t chunk : {1, 8, 37, 1000}) {
    for (auto [T, kd_w, ce_w] : {std::tuple{1.0, 1.0, 0.0}, {2.5, 0.7, 0.3}, {1.0, 0.0, 1.0}, {0.5, 1.0, 1.0}}) {
      Inputs in = inputs(37, 16, 50, 3);
      at::Tensor h1 = in.h.clone().requires_grad_(true), h2 = in.h.clone().requires_grad_(true);
      HeadLossOptions o{T, kd_w, ce_w, chunk};
      at::Tensor out = head_loss(h1, in.head, in.th, in.tg, o);
      at::Tensor ref = reference(in, h2, T, kd_w, ce_w);
      const double r = ref.item<double>();
      EXPECT_NEAR(out[0].item<double>(), r, 1e-12 * std::max(1.0, std::abs(r))) << chunk << " T=" << T;
      out[0].backward();
      ref.backward();
      const double gmax = h2.grad().abs().max().item<double>();
      EXPECT_LE((h1.grad() - h2.grad()).abs().max().item<double>(), 1e-12 * gmax) << chunk << " T=" << T;
    }
  }
}

TEST(HeadLoss, TermsAreSeparatelyDifferentiableAndAgreementCounts) {
  Inputs in = inputs(20, 8, 30, 5);
  at::Tensor h1 = in.h.clone().requires_grad_(true), h2 = in.h.clone().requires_grad_(true);
  at::Tensor out = head_loss(h1, in.head, in.th, in.tg, {2.0, 1.0, 1.0, 7});
  // d(ce term) alone equals the gradient of the plain cross entropy.
  out[2].backward();
  at::cross_entropy_loss(at::matmul(h2, in.head.t()), in.tg).backward();
  EXPECT_LE((h1.grad() - h2.grad()).abs().max().item<double>(), 1e-13);
  // The student equal to the teacher: KL 0, agreement 1, zero KD gradient.
  at::Tensor h3 = in.th.clone().requires_grad_(true);
  at::Tensor same = head_loss(h3, in.head, in.th, {}, {2.0, 1.0, 0.0, 6});
  EXPECT_NEAR(same[1].item<double>(), 0.0, 1e-13);
  EXPECT_EQ(same[3].item<double>(), 1.0);
  same[0].backward();
  EXPECT_LE(h3.grad().abs().max().item<double>(), 1e-14);
  const double agree = head_loss(in.h, in.head, in.th, {}, {1.0, 1.0, 0.0, 6})[3].item<double>();
  const double want = (at::matmul(in.h, in.head.t()).argmax(-1) == at::matmul(in.th, in.head.t()).argmax(-1))
                          .to(at::kDouble).mean().item<double>();
  EXPECT_EQ(agree, want);
}

// fp32 logits 200 apart: the teacher's softmax underflows to exactly 0 for most words. 0 * log 0
// must count as 0 (it came out NaN when the teacher's log-probabilities were taken as log(p)).
TEST(HeadLoss, UnderflowingTeacherProbabilitiesGiveAFiniteKl) {
  const auto f = at::TensorOptions().dtype(at::kFloat);
  at::Tensor head = at::eye(4, f);                         // logits = hidden
  at::Tensor th = at::tensor({200.0f, 0.0f, 0.0f, 0.0f}, f).view({1, 4});
  at::Tensor h = at::tensor({1.0f, 0.0f, 0.0f, 0.0f}, f).view({1, 4}).requires_grad_(true);
  at::Tensor out = head_loss(h, head, th, {}, {1.0, 1.0, 0.0, 1});
  // KL = sum_v p_t (log p_t - log p_s) with p_t = one-hot up to e^-200: -log p_s(0).
  const double want = -std::log(std::exp(1.0) / (std::exp(1.0) + 3.0));
  EXPECT_NEAR(out[1].item<double>(), want, 1e-6);
  out[0].backward();
  EXPECT_TRUE(at::isfinite(h.grad()).all().item<bool>());
}

// bf16 hidden states and a confident target (p = 1 - 3e^-12): the CE gradient at the target is
// p - 1 = -1.8e-5, which a softmax rounded to bf16 (steps of 2^-8 near 1) would make exactly 0.
// The gradient is formed in fp32 (p near 1 carries an absolute error of up to two fp32 ulps of 1,
// 2 x 2^-23) and rounded once to bf16 (2^-8 relative at most).
TEST(HeadLoss, CrossEntropyGradientOfAConfidentTargetSurvivesBf16) {
  const auto b = at::TensorOptions().dtype(at::kBFloat16);
  at::Tensor head = at::eye(4, b);  // logits = hidden
  at::Tensor h = at::tensor({12.0f, 0.0f, 0.0f, 0.0f}).view({1, 4}).to(at::kBFloat16).requires_grad_(true);
  at::Tensor tg = at::zeros({1}, at::kLong);
  head_loss(h, head, {}, tg, {1.0, 0.0, 1.0, 1})[0].backward();
  const double want = -3.0 / (std::exp(12.0) + 3.0);
  EXPECT_NEAR(h.grad()[0][0].item<double>(), want, 2 * std::ldexp(1.0, -23) + std::abs(want) / 256) << "target";
  EXPECT_NEAR(h.grad()[0][1].item<double>(), 1.0 / (std::exp(12.0) + 3.0), 1.0 / (std::exp(12.0) + 3.0) / 256);
}

TEST(HeadLoss, MissingInputsAreConfigErrors) {
  Inputs in = inputs(4, 8, 10, 1);
  EXPECT_THROW(head_loss(in.h, in.head, {}, in.tg, {1.0, 1.0, 0.0, 4}), ConfigError);     // kd without teacher
  EXPECT_THROW(head_loss(in.h, in.head, in.th, {}, {1.0, 1.0, 1.0, 4}), ConfigError);     // ce without targets
  EXPECT_THROW(head_loss(in.h, in.head.t(), in.th, in.tg, {1.0, 1.0, 0.0, 4}), ConfigError);  // wrong head shape
  EXPECT_THROW(head_loss(in.h, in.head, in.th, in.tg, {0.0, 1.0, 0.0, 4}), ConfigError);  // T = 0
}

// forward() is hidden() @ head^T; the teacher is the largest architecture in bf16 without LoRA
// (LoRA B starts at zero, so the supernet at that architecture equals it until trained).
TEST(HeadLoss, SupernetHiddenAndTeacher) {
  model::LlamaConfig c;
  c.vocab_size = 61;
  c.hidden_size = 256;
  c.intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 32;
  model::Checkpoint ck = testing::random_llama_checkpoint(c, 11, 0.05, 1.0);
  SearchSpace space = SearchSpace::from_yaml("hidden: [128, 256]\nlayers:\n  intermediate: [128, 256]\n"
                                             "formats: [bf16, w8a16]\n", ck.config, "<test>", "cpu");
  SupernetOptions o;
  o.dtype = at::kDouble;
  o.lora_rank = 4;
  Supernet net(ck, space, {}, o, 2);
  at::Tensor ids = at::randint(61, {2, 9}, at::make_generator<at::CPUGeneratorImpl>(4), at::kLong);
  ArchDist d = net.distribution(Relaxation::kSoftmax);
  at::Tensor logits = net.forward(ids, d);
  at::Tensor via_hidden = at::matmul(net.hidden(ids, d), net.lm_head().t());
  EXPECT_LE((logits - via_hidden).abs().max().item<double>(), 1e-12);
  at::Tensor teacher = net.teacher_hidden(ids);
  EXPECT_FALSE(teacher.requires_grad());
  at::Tensor largest = net.hidden(ids, net.one_hot(largest_arch(space)));
  EXPECT_LE((teacher - largest).abs().max().item<double>(), 1e-12);
  EXPECT_GT((teacher - net.hidden(ids, d)).abs().max().item<double>(), 1e-3);  // the soft mixture differs
}

}  // namespace
}  // namespace jointnas::search
