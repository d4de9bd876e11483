// GPTQ: agreement with the independent Python golden (scripts/make_gptq_golden.py), the property
// that justifies it (smaller layer-output error than round-to-nearest on correlated inputs),
// validity of its QuantizedWeight, degenerate Hessians, and every argument check.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/safetensors.h"
#include "jointnas/quant/gptq.h"
#include "tensor_assert.h"

namespace jointnas::quant {
namespace {

using jointnas::testing::fixture_path;

std::map<std::string, at::Tensor> read_golden() {
  auto f = model::SafetensorsFile::open(fixture_path("quant/gptq_golden.safetensors"));
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, e] : f->entries()) out[name] = model::tensor_from_entry(f, e).clone();
  return out;
}

// X = (Z A) * col_scale: features mixed by a random A (strong correlations, as between the
// channels of a transformer's hidden state) with a log-normal spread of channel scales. The same
// recipe as the golden's, with LibTorch's generator.
at::Tensor correlated_inputs(int64_t rows, int64_t k, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor z = at::randn({rows, k}, gen);
  at::Tensor a = at::randn({k, k}, gen) / std::sqrt(static_cast<double>(k)) + 0.5 * at::eye(k);
  at::Tensor col_scale = at::exp(at::randn({k}, gen) * 0.7);
  return at::matmul(z, a) * col_scale;
}

at::Tensor hessian_of(const at::Tensor& x) {
  HessianAccumulator acc(x.size(-1));
  acc.add(x);
  return acc.hessian();
}

// ||X W^T - X Ŵ^T||_F in fp64: the layer-output error GPTQ minimizes.
double output_error(const at::Tensor& x, const at::Tensor& w, const QuantizedWeight& qw) {
  at::Tensor diff = w.to(at::kDouble) - dequantize_ref(qw, at::kFloat).to(at::kDouble);
  return at::matmul(x.to(at::kDouble), diff.t()).norm().item<double>();
}

// The golden is the fp64 unblocked sweep. A different summation order (blocked updates, another
// BLAS) or fp32 changes a column's value w / s by a relative ~K eps cond-ish amount, which can
// only change a rounding when w / s lies that close to a half-integer: such a flip changes that
// q by exactly 1, and its error feedback (one step times U_jk / U_jj) moves later columns by a
// fraction of a step, flipping a few more of them by 1. Measured with the script's code on 200
// seeds of this data: fp32 vs fp64 flipped nothing in 94 % of the runs and at most 17 elements
// (all by 1); fp64 vs fp64 has ~1e-9 of the fp32 chance. So: every |dq| <= 1 and at most 1 %
// of the elements (24 of 2304) differ; a wrong update or grid changes hundreds.
constexpr double kMaxFlippedFraction = 0.01;

void expect_matches_golden(const QuantizedWeight& got,
                           const std::map<std::string, at::Tensor>& gold, const std::string& tag,
                           const std::string& what) {
  SCOPED_TRACE(what);
  const at::Tensor& q_gold = gold.at(tag + ".q");
  ASSERT_EQ(got.q.scalar_type(), at::kChar);
  ASSERT_EQ(got.q.sizes(), q_gold.sizes());
  const at::Tensor dq = (got.q.to(at::kInt) - q_gold.to(at::kInt)).abs();  // [N, K]
  EXPECT_LE(dq.max().item<int>(), 1);
  const int64_t flipped = dq.ne(0).sum().item<int64_t>();
  EXPECT_LE(flipped, static_cast<int64_t>(kMaxFlippedFraction * static_cast<double>(dq.numel())));
  // Grids: per-row and static (act_order) grids come from W alone, so they must be equal. A
  // group's grid from the sweep may differ only in a row where a flip happened before the group.
  const int64_t g = got.group, groups = got.q.size(1) / g;
  ASSERT_EQ(got.scale.sizes(), gold.at(tag + ".scale").sizes());
  ASSERT_EQ(got.scale.scalar_type(), gold.at(tag + ".scale").scalar_type());
  const bool static_grid = groups == 1 || tag.find("act_order") != std::string::npos;
  // earlier_flip[n, j]: row n has a flipped q in a column before group j.
  at::Tensor flips_per_group = dq.ne(0).reshape({dq.size(0), groups, g}).sum(-1);  // [N, G]
  at::Tensor earlier_flip = (flips_per_group.cumsum(1) - flips_per_group).gt(0);
  if (static_grid) earlier_flip = at::zeros_like(earlier_flip);
  at::Tensor scale_bad =
      got.scale.ne(gold.at(tag + ".scale")).logical_and(earlier_flip.logical_not());
  EXPECT_EQ(scale_bad.sum().item<int64_t>(), 0) << "scales differ where the grids must match";
  if (gold.count(tag + ".zero")) {
    ASSERT_TRUE(got.zero.defined());
    at::Tensor zero_bad =
        got.zero.ne(gold.at(tag + ".zero")).logical_and(earlier_flip.logical_not());
    EXPECT_EQ(zero_bad.sum().item<int64_t>(), 0) << "zero points differ where grids must match";
  }
}

TEST(Gptq, HessianAccumulatorMatchesGolden) {
  const auto gold = read_golden();
  const at::Tensor& x = gold.at("x");  // [256, 96] bf16
  // Batches of different shapes and dtypes: [100, K] bf16, then [2, 78, K] fp32.
  HessianAccumulator acc(96);
  acc.add(x.slice(0, 0, 100));
  acc.add(x.slice(0, 100).to(at::kFloat).reshape({2, 78, 96}));
  EXPECT_EQ(acc.samples(), 256);
  ASSERT_EQ(acc.hessian().scalar_type(), at::kDouble);
  // The golden H is the fp64 sum rounded to fp32 (relative 2^-24 per entry); the fp64 running
  // mean adds ~256 eps * sum |x_i x_j| <= 1e-13 * max |H| of reordering error.
  const at::Tensor& h_gold = gold.at("hessian");
  JNAS_EXPECT_CLOSE(acc.hessian(), h_gold, 1e-12 * h_gold.abs().max().item<double>(),
                    std::ldexp(1.0, -24));
}

TEST(Gptq, HessianAccumulatorRunningMeanEqualsOneBatch) {
  const at::Tensor x = correlated_inputs(300, 40, 11);
  HessianAccumulator acc(40);
  for (int64_t r = 0; r < 300; r += 70) acc.add(x.slice(0, r, std::min<int64_t>(r + 70, 300)));
  acc.add(x.slice(0, 0, 0));  // an empty batch changes nothing
  EXPECT_EQ(acc.samples(), 300);
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor expected = 2.0 / 300.0 * at::matmul(xd.t(), xd);
  // Same fp64 sums in another order, each rescale one more rounding: ~10 eps relative to the
  // entries' magnitude.
  JNAS_EXPECT_CLOSE(acc.hessian(), expected, 1e-13 * expected.abs().max().item<double>(), 1e-13);
}

TEST(Gptq, MatchesGolden) {
  const auto gold = read_golden();
  const at::Tensor& w = gold.at("w");
  const at::Tensor& h = gold.at("hessian");
  for (const char* name : {"w4a16_g128", "w8a16"}) {
    for (bool act_order : {false, true}) {
      // block 128 > K: one block; 48: a 32-column group straddles two blocks; 16: groups span
      // two blocks. fp64 (the CPU default) and fp32 (the GPU path).
      for (int64_t block : {128, 48, 16}) {
        for (c10::ScalarType dt : {c10::ScalarType::Undefined, at::kFloat}) {
          GptqOptions opt;
          opt.block_size = block;
          opt.act_order = act_order;
          opt.compute_dtype = dt;
          const std::string tag = std::string(name) + (act_order ? "_act_order" : "");
          const QuantizedWeight got = gptq_quantize(w, h, find_format(name), opt);
          EXPECT_EQ(got.group, std::string(name) == "w8a16" ? 96 : 32);
          expect_matches_golden(
              got, gold, tag,
              tag + " block " + std::to_string(block) + (dt == at::kFloat ? " fp32" : " fp64"));
        }
      }
    }
  }
}

TEST(Gptq, DiagonalHessianIsRoundToNearest) {
  // Uncorrelated inputs: H (and U) are diagonal, so no error is fed forward (U_jk = 0 for k > j)
  // and GPTQ must equal quantize_ref bit for bit, rounding ties included. Rows 0-1 (range
  // [0, 15] -> w4 scale 1, zero 0) and 4-7 (amax 127 -> int8 scale 1) hold exact ties k + 1/2,
  // which half-to-even and half-away-from-zero round differently; rows 2-3 are non-ties.
  const int64_t N = 8, K = 64;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(41);
  at::Tensor w = at::randn({N, K}, gen) * 0.05;
  at::Tensor ties = at::floor(at::rand({4, K}, gen) * 14.0) + 0.5;  // in [0.5, 13.5]
  ties.select(1, 0).fill_(0.0);
  ties.select(1, 1).fill_(15.0);
  w.slice(0, 0, 2).copy_(ties.slice(0, 0, 2));  // asymmetric rows: [0, 15]
  w.slice(0, 2, 4).copy_(ties.slice(0, 2, 4) * 127.0 / 15.0);
  at::Tensor sym = at::floor(at::rand({4, K}, gen) * 253.0) - 126.5;  // in [-126.5, 125.5]
  sym.select(1, 0).fill_(127.0);
  w.slice(0, 4, 8).copy_(sym);  // symmetric rows: amax 127 -> scale 1
  const at::Tensor h = at::diag(at::rand({K}, gen) + 0.1);
  for (const char* name : {"w4a16_g128", "w8a16", "w8a8"}) {
    const QuantFormat& f = find_format(name);
    const QuantizedWeight rtn = quantize_ref(w, f);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      opt.block_size = 16;
      const QuantizedWeight gq = gptq_quantize(w, h, f, opt);
      SCOPED_TRACE(std::string(name) + (act_order ? " act_order" : ""));
      EXPECT_TRUE(at::equal(gq.q, rtn.q));
      EXPECT_TRUE(at::equal(gq.scale, rtn.scale));
      if (f.asymmetric) {
        EXPECT_TRUE(at::equal(gq.zero, rtn.zero));
      }
    }
  }
}

TEST(Gptq, BeatsRoundToNearestOnCorrelatedInputs) {
  // K = 256: w4a16_g128 gets two real groups of 128. The error is measured on the calibration
  // inputs themselves (the objective GPTQ minimizes) and on fresh inputs of the same distribution
  // (what matters for a model). On the golden's data the ratio is ~0.7 for both formats; an
  // update with the wrong sign or the wrong row of H^-1 makes GPTQ worse than RTN.
  const int64_t N = 64, K = 256;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor w = at::randn({N, K}, gen) * 0.05;
  const at::Tensor x = correlated_inputs(1024, K, 5);
  const at::Tensor x_calib = x.slice(0, 0, 512);
  const at::Tensor x_fresh = x.slice(0, 512);  // same mixing A, rows GPTQ has not seen
  const at::Tensor h = hessian_of(x_calib);
  for (const char* name : {"w4a16_g128", "w8a16", "w8a8"}) {
    const QuantFormat& f = find_format(name);
    const QuantizedWeight rtn = quantize_ref(w, f);
    for (bool act_order : {false, true}) {
      for (c10::ScalarType dt : {c10::ScalarType::Undefined, at::kFloat}) {
        GptqOptions opt;
        opt.act_order = act_order;
        opt.compute_dtype = dt;
        const QuantizedWeight gq = gptq_quantize(w, h, f, opt);
        SCOPED_TRACE(std::string(name) + (act_order ? " act_order" : "") +
                     (dt == at::kFloat ? " fp32" : " fp64"));
        const double calib_ratio = output_error(x_calib, w, gq) / output_error(x_calib, w, rtn);
        const double fresh_ratio = output_error(x_fresh, w, gq) / output_error(x_fresh, w, rtn);
        EXPECT_LT(calib_ratio, 0.9);
        EXPECT_LT(fresh_ratio, 1.0);
      }
    }
  }
}

TEST(Gptq, ValuesLieOnTheirOwnGrid) {
  const int64_t N = 40, K = 192;  // w4a16_g128: 192 % 128 != 0 -> group 64
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(21);
  at::Tensor w = at::randn({N, K}, gen) * 0.02;
  w.select(1, 7).mul_(40.0);  // an outlier column: error feedback pushes others to the clamp
  const at::Tensor h = hessian_of(correlated_inputs(512, K, 22));
  for (const char* name : {"w4a16_g128", "w8a16", "w8a8"}) {
    const QuantFormat& f = find_format(name);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      opt.block_size = 48;
      const QuantizedWeight qw = gptq_quantize(w.to(at::kBFloat16), h, f, opt);
      SCOPED_TRACE(std::string(name) + (act_order ? " act_order" : ""));
      const int64_t g = f.group_for(K);
      EXPECT_EQ(qw.group, g);
      ASSERT_EQ(qw.q.scalar_type(), at::kChar);
      EXPECT_EQ(qw.q.sizes(), w.sizes());
      EXPECT_EQ(qw.scale.scalar_type(), f.scale_dtype);
      EXPECT_EQ(qw.scale.sizes(), (std::vector<int64_t>{N, K / g}));
      EXPECT_TRUE((qw.scale > 0).all().item<bool>());
      EXPECT_EQ(qw.zero.defined(), f.asymmetric);
      if (f.asymmetric) {
        EXPECT_EQ(qw.zero.scalar_type(), at::kByte);
        EXPECT_LE(qw.zero.max().item<int>(), f.qmax());
      }
      EXPECT_GE(qw.q.min().item<int>(), f.qmin());
      EXPECT_LE(qw.q.max().item<int>(), f.qmax());
      // (q - z) s is exact in fp32 for bf16 scales, and within half an ulp of an integer multiple
      // of s for fp32 ones, so rounding it back onto the same grid must return q exactly.
      QuantizedWeight grid = qw;
      grid.q = at::Tensor();
      const QuantizedWeight again = quantize_on_grid(dequantize_ref(qw, at::kFloat), grid);
      EXPECT_TRUE(at::equal(again.q, qw.q));
    }
  }
}

TEST(Gptq, DeadColumnsAndRankDeficientHessian) {
  const int64_t N = 16, K = 128;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(31);
  at::Tensor w = at::randn({N, K}, gen) * 0.05;
  w.select(1, 5).fill_(3.0);  // large weights on inputs that are always zero
  w.select(1, 90).fill_(-3.0);
  // 12 rows: H has rank <= 12 of 128, singular without the damping.
  at::Tensor x = correlated_inputs(12, K, 32);
  x.select(1, 5).zero_();
  x.select(1, 90).zero_();
  const at::Tensor h = hessian_of(x);
  for (const char* name : {"w4a16_g128", "w8a16"}) {
    const QuantFormat& f = find_format(name);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      const QuantizedWeight qw = gptq_quantize(w, h, f, opt);
      SCOPED_TRACE(std::string(name) + (act_order ? " act_order" : ""));
      const at::Tensor dq = dequantize_ref(qw, at::kFloat);
      EXPECT_TRUE(at::isfinite(dq).all().item<bool>());
      // Dead columns are zeroed before quantizing, and every grid holds 0 exactly.
      EXPECT_TRUE((dq.select(1, 5) == 0).all().item<bool>());
      EXPECT_TRUE((dq.select(1, 90) == 0).all().item<bool>());
      // With 12 samples GPTQ can move nearly all the error into X's null space.
      EXPECT_LT(output_error(x, w, qw), 0.5 * output_error(x, w, quantize_ref(w, f)));
    }
  }
  // A layer whose inputs were all zero: every column is dead, the result is the zero weight.
  const QuantizedWeight all_dead = gptq_quantize(w, at::zeros({K, K}), find_format("w4a16_g128"));
  EXPECT_TRUE((dequantize_ref(all_dead, at::kFloat) == 0).all().item<bool>());
}

TEST(Gptq, RejectsBadArguments) {
  const at::Tensor w = at::randn({8, 64});
  const at::Tensor h = hessian_of(at::randn({32, 64}));
  const QuantFormat& w4 = find_format("w4a16_g128");
  EXPECT_THROW(gptq_quantize(w, h, find_format("fp8_e4m3")), c10::Error);
  EXPECT_THROW(gptq_quantize(w, h, find_format("bf16")), c10::Error);
  EXPECT_THROW(gptq_quantize(w, hessian_of(at::randn({32, 65})), w4), c10::Error);
  EXPECT_THROW(gptq_quantize(w, h.slice(1, 0, 63), w4), c10::Error);
  EXPECT_THROW(gptq_quantize(w, h.flatten(), w4), c10::Error);
  EXPECT_THROW(gptq_quantize(w.flatten(), h, w4), c10::Error);
  EXPECT_THROW(gptq_quantize(w.to(at::kInt), h, w4), c10::Error);
  at::Tensor h_nan = h.clone();
  h_nan[3][4] = NAN;
  EXPECT_THROW(gptq_quantize(w, h_nan, w4), c10::Error);
  GptqOptions opt;
  opt.block_size = 0;
  EXPECT_THROW(gptq_quantize(w, h, w4, opt), c10::Error);
  opt = GptqOptions{};
  opt.damp_percent = -0.1;
  EXPECT_THROW(gptq_quantize(w, h, w4, opt), c10::Error);
  opt = GptqOptions{};
  opt.compute_dtype = at::kBFloat16;
  EXPECT_THROW(gptq_quantize(w, h, w4, opt), c10::Error);
  // Not a sum of x x^T: negative definite, no damping (relative to mean(diag H) < 0) helps.
  EXPECT_THROW(gptq_quantize(w, -at::eye(64), w4), jointnas::Error);

  HessianAccumulator acc(64);
  EXPECT_THROW(acc.hessian(), c10::Error);  // nothing added yet
  EXPECT_THROW(acc.add(at::randn({4, 63})), c10::Error);
  EXPECT_THROW(acc.add(at::ones({4, 64}, at::kInt)), c10::Error);
  EXPECT_THROW(HessianAccumulator(0), c10::Error);
}

}  // namespace
}  // namespace jointnas::quant
