// The W8A8 / fp8 kernels (quant/act_quant_cuda.cu, quantizing_producers_cuda.cu, gemv_a8_cuda.cu,
// scale_epilogue_cuda.cu) against the references of quantize.h (label
// `cuda`): activation quantization bitwise, the GEMVs and the _int_mm epilogue within bounds
// derived below.
//
// The references run on the CPU on purpose: ATen on CUDA divides a tensor by a scalar through
// the scalar's reciprocal (a * (1 / b), up to an ulp off the quotient), so quantize_act_ref on a
// CUDA tensor can compute a different scale amax / qmax than the IEEE division the kernel (and
// ATen on the CPU) performs.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "jointnas/kernels/fused.h"
#include "jointnas/quant/format.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/quantize.h"
#include "tensor_assert.h"

namespace jointnas::quant {
namespace {

#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"

// Output rounding of bf16 (8 significant bits): |bf16(z) - z| <= 2^-8 |z| for normal z.
const double kBf16Round = std::ldexp(1.0, -8);
// fp32 unit roundoff.
const double kFp32Round = std::ldexp(1.0, -24);
// Absolute slack: only results that would round into the fp32 / bf16 subnormal range (below the
// smallest normal, 2^-126) can break a relative bound; none of the data below comes near it.
const double kTiny = std::ldexp(1.0, -126);

std::pair<at::Tensor, at::Tensor> quantize_act_cuda(const QuantFormat& f, const at::Tensor& x) {
  return f.act == ActType::kFp8E4M3PerToken ? cuda::quantize_act_fp8(x)
                                            : cuda::quantize_act_int8(x);
}

at::Tensor gemv_cuda(const QuantFormat& f, const at::Tensor& qx, const at::Tensor& sx,
                     const PackedWeight& pw, const at::Tensor* residual) {
  return f.act == ActType::kFp8E4M3PerToken ? cuda::gemv_fp8(qx, sx, pw.data, pw.scale, residual)
                                            : cuda::gemv_w8a8(qx, sx, pw.data, pw.scale, residual);
}

// Bitwise equality through the raw bytes (fp8 has no CPU comparison of its own, and -0 / +0 or
// NaN payloads must match too), with the first differing element on failure.
::testing::AssertionResult bits_equal(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes() || got.scalar_type() != want.scalar_type()) {
    return ::testing::AssertionFailure() << "got " << got.scalar_type() << " " << got.sizes()
                                         << ", want " << want.scalar_type() << " " << want.sizes();
  }
  const at::ScalarType raw = got.element_size() == 4   ? at::kInt
                             : got.element_size() == 2 ? at::kShort
                                                       : at::kByte;
  at::Tensor a = got.cpu().contiguous().view(raw).reshape({-1});
  at::Tensor b = want.cpu().contiguous().view(raw).reshape({-1});
  at::Tensor diff = a.ne(b);
  const int64_t bad = diff.sum().item<int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const int64_t i = diff.nonzero()[0][0].item<int64_t>();
  return ::testing::AssertionFailure()
         << bad << " of " << a.numel() << " elements differ; first at flat index " << i << ": got "
         << got.cpu().reshape({-1})[i].to(at::kDouble).item<double>() << ", want "
         << want.cpu().reshape({-1})[i].to(at::kDouble).item<double>();
}

// |y - ref| <= bound elementwise (all double on the CPU), with the worst element on failure.
::testing::AssertionResult within(const at::Tensor& y, const at::Tensor& ref,
                                  const at::Tensor& bound) {
  if (y.sizes() != ref.sizes()) {
    return ::testing::AssertionFailure() << "shape " << y.sizes() << " vs " << ref.sizes();
  }
  at::Tensor excess = (y.to(at::kCPU, at::kDouble) - ref).abs() - bound;
  const int64_t bad = excess.gt(0).logical_or(excess.isnan()).sum().item<int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const int64_t i = excess.nan_to_num(1e300).reshape({-1}).argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << bad << " of " << y.numel() << " elements out of bound; worst at flat index " << i
         << ": got " << y.cpu().reshape({-1})[i].to(at::kDouble).item<double>() << ", ref "
         << ref.reshape({-1})[i].item<double>() << ", bound "
         << bound.reshape({-1})[i].item<double>();
}

// Rows of x for the quantizer (bf16, CPU); row r gets pattern (r + shift) % 5, so that with the
// five shifts even M = 1 sees every pattern:
//   0 random; 1 random with one outlier (300 on even rows: the int8 values land on a few
//   levels; -30000 on odd rows: x / s ~ 0.015 puts most e4m3 values among its subnormals);
//   2 all zero (scale 1, q 0); 3 tiny (1e-30: scale and x / scale stay normal fp32, so nothing
//   is flushed); 4 halves k / 2 with amax 127, so that the int8 scale is exactly 1 and x / s hits
//   every tie (round half to even).
at::Tensor act_rows(int64_t M, int64_t K, int shift) {
  at::Tensor x = at::randn({M, K}, at::kFloat);
  for (int64_t r = 0; r < M; ++r) {
    at::Tensor row = x[r];
    switch ((r + shift) % 5) {
      case 1:
        row[(r * 7 + 3) % K].fill_(r % 2 == 0 ? 300.0 : -30000.0);
        break;
      case 2:
        row.zero_();
        break;
      case 3:
        row.mul_(1e-30);
        break;
      case 4: {
        row.copy_((at::arange(K, at::kFloat).remainder(255) - 127) * 0.5);
        row[K / 2].fill_(127.0);
        break;
      }
      default:
        break;
    }
  }
  return x.to(at::kBFloat16);
}

void expect_quantize_act_bitwise(const QuantFormat& f, const at::Tensor& x_cuda) {
  const QuantizedAct ref = quantize_act_ref(x_cuda.cpu(), f);
  const auto [q, s] = quantize_act_cuda(f, x_cuda);
  EXPECT_TRUE(bits_equal(s, ref.scale)) << "scales";
  EXPECT_TRUE(bits_equal(q, ref.q)) << "values";
}

TEST(AqKernelsCuda, QuantizeActIsBitwiseEqualToReference) {
  REQUIRE_CUDA();
  at::manual_seed(11);
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    // 16 / 48 / 4096: one vector per thread (1 or several warps) and two per thread in
    // registers; 20 (K % 8 != 0): the scalar path; 16400 (> 16384): vectors re-read for the
    // second pass.
    for (int64_t K : {16, 20, 48, 4096, 16400}) {
      for (int64_t M : {1, 3, 17, 128}) {
        for (int shift = 0; shift < 5; ++shift) {
          SCOPED_TRACE(::testing::Message()
                       << name << " M " << M << " K " << K << " shift " << shift);
          expect_quantize_act_bitwise(f, act_rows(M, K, shift).cuda());
        }
      }
    }
    // A contiguous view that starts 2 bytes into its storage: not 16-byte aligned, scalar path.
    SCOPED_TRACE(name);
    at::Tensor flat = act_rows(1, 3 * 64 + 1, 0).cuda().reshape({-1});
    expect_quantize_act_bitwise(f, flat.narrow(0, 1, 3 * 64).view({3, 64}));
  }
}

// The producers that quantize their output (RMSNorm before q/k/v and gate/up, SiLU * up before
// down) are bitwise the unfused pair, over the same row patterns, both held-row widths and the
// fallbacks: 20 (not a multiple of 8 values) and 16400 (longer than the 16384 a block holds) run
// the unfused pair; 16 / 48 / 4096 / 14336 the fused kernel (RMSNorm: 256 threads, 1, 1, 2 and 7
// vectors each; SiLU * up: up to 1024 threads, and every thread count at 14336).
TEST(AqKernelsCuda, ProducersAreBitwiseTheUnfusedPair) {
  REQUIRE_CUDA();
  at::manual_seed(12);
  const double eps = 1e-5;
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    const bool fp8 = f.act == ActType::kFp8E4M3PerToken;
    for (int64_t K : {16, 20, 48, 4096, 14336, 16400}) {
      // Norm weights around 1 with a few large ones, as trained models have.
      at::Tensor w = (1 + 0.2 * at::randn({K})).index_fill_(0, at::arange(0, K, 97), 8.0);
      w = w.to(at::kBFloat16).cuda();
      for (int64_t M : {1, 3, 17, 128}) {
        for (int shift = 0; shift < 5; ++shift) {
          SCOPED_TRACE(::testing::Message() << name << " M " << M << " K " << K << " shift " << shift);
          const at::Tensor x = act_rows(M, K, shift).cuda();
          const auto [qn, sn] = cuda::rms_norm_quantize_act(x, w, eps, fp8);
          const auto [qn_ref, sn_ref] = quantize_act_cuda(f, kernels::rms_norm(x, w, eps));
          EXPECT_TRUE(bits_equal(sn, sn_ref)) << "rms_norm scales";
          EXPECT_TRUE(bits_equal(qn, qn_ref)) << "rms_norm values";
          const at::Tensor gu = act_rows(M, 2 * K, shift).cuda();
          const auto [qs, ss] = cuda::silu_mul_quantize_act(gu, fp8);
          const auto [qs_ref, ss_ref] = quantize_act_cuda(f, kernels::silu_mul(gu));
          EXPECT_TRUE(bits_equal(ss, ss_ref)) << "silu_mul scales";
          EXPECT_TRUE(bits_equal(qs, qs_ref)) << "silu_mul values";
        }
      }
    }
    // The 8B prefill shape, and a view 2 bytes into its storage (not 16-byte aligned: unfused).
    SCOPED_TRACE(name);
    const at::Tensor w = (1 + 0.2 * at::randn({4096})).to(at::kBFloat16).cuda();
    const at::Tensor x = act_rows(2048, 4096, 0).cuda();
    EXPECT_TRUE(bits_equal(cuda::rms_norm_quantize_act(x, w, eps, fp8).first,
                           quantize_act_cuda(f, kernels::rms_norm(x, w, eps)).first));
    for (int threads : {256, 512, 1024}) {
      const at::Tensor gu = act_rows(17, 2 * 14336, 2).cuda();
      EXPECT_TRUE(bits_equal(cuda::silu_mul_quantize_act(gu, fp8, threads).first,
                             quantize_act_cuda(f, kernels::silu_mul(gu)).first)) << threads << " threads";
    }
    // SiLU * up with as many rows as prefill.
    const at::Tensor gu = act_rows(2048, 2 * 14336, 1).cuda();
    const auto [qs, ss] = cuda::silu_mul_quantize_act(gu, fp8);
    const auto [qs_ref, ss_ref] = quantize_act_cuda(f, kernels::silu_mul(gu));
    EXPECT_TRUE(bits_equal(ss, ss_ref));
    EXPECT_TRUE(bits_equal(qs, qs_ref));
    const at::Tensor flat = act_rows(1, 3 * 64 + 1, 0).cuda().reshape({-1});
    const at::Tensor odd = flat.narrow(0, 1, 3 * 64).view({3, 64});
    const at::Tensor w64 = w.narrow(0, 0, 64).contiguous();
    EXPECT_TRUE(bits_equal(cuda::rms_norm_quantize_act(odd, w64, eps, fp8).first,
                           quantize_act_cuda(f, kernels::rms_norm(odd, w64, eps)).first));
    EXPECT_TRUE(bits_equal(cuda::silu_mul_quantize_act(odd, fp8).first,
                           quantize_act_cuda(f, kernels::silu_mul(odd)).first));
  }
}

// The attention output's codes for o_proj, gathered from [B, nh, T, hd] by the loads, are bitwise
// the codes of the transposed copy: SDPA's layout, a [B, T, nh, hd] buffer seen transposed, decode
// (T = 1), and hd = 20 (not a multiple of 8: the copy, then the quantizer).
TEST(AqKernelsCuda, AttentionOutputCodesAreBitwiseTheTransposedCopy) {
  REQUIRE_CUDA();
  at::manual_seed(14);
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    const bool fp8 = f.act == ActType::kFp8E4M3PerToken;
    struct Case {
      int64_t B, nh, T, hd;
      bool bthd;  // stored as [B, T, nh, hd]
    };
    for (const Case c : {Case{1, 32, 300, 128, false}, Case{2, 32, 300, 128, true}, Case{3, 32, 1, 128, false},
                         Case{2, 6, 17, 64, false}, Case{2, 3, 9, 20, false}}) {
      SCOPED_TRACE(::testing::Message() << name << " B " << c.B << " nh " << c.nh << " T " << c.T << " hd "
                                        << c.hd << (c.bthd ? " [B, T, nh, hd]" : ""));
      const at::Tensor rows = act_rows(c.B * c.T, c.nh * c.hd, static_cast<int>(c.T % 5)).cuda();
      const at::Tensor bthd = rows.view({c.B, c.T, c.nh, c.hd});
      const at::Tensor attn = c.bthd ? bthd.transpose(1, 2) : bthd.transpose(1, 2).contiguous();
      const auto [q, s] = cuda::heads_quantize_act(attn, fp8);
      const auto [q_ref, s_ref] = quantize_act_cuda(f, attn.transpose(1, 2).reshape({c.B * c.T, c.nh * c.hd}).contiguous());
      EXPECT_TRUE(bits_equal(s, s_ref)) << "scales";
      EXPECT_TRUE(bits_equal(q, q_ref)) << "values";
    }
  }
}

// Bounds of the GEMV / epilogue output y against linear_ref in double (whose own error, two
// double roundings of the scale products, is ~2^-52 relative and ignored):
//   w8a8: the int32 dot is exact; float(dot) (exact below 2^24, else 2^-24 relative) and the two
//     fp32 products add at most 3 * 2^-24 relative; the bf16 rounding adds 2^-8 / (1 + 2^-8)
//     relative. Together (2^-8 / (1 + 2^-8) + (1 + 2^-8) 3 * 2^-24) < 2^-8: |y - ref| <=
//     2^-8 |ref| (+ kTiny for underflow).
//   fp8: the e4m3 products are exact in fp32; summing K of them in fp32 in any order errs by at
//     most (K - 1) 2^-24 / (1 - (K - 1) 2^-24) sum |p| <= K 2^-24 sum |p|; scaled by sx sw this is
//     E = K 2^-24 (|qx| sx @ (|qw| sw)^T). E passes through the two products and the bf16
//     rounding (a factor below 1 + 2^-7), on top of the w8a8 bound:
//     |y - ref| <= 2^-8 |ref| + (1 + 2^-7) E (+ kTiny).
at::Tensor output_bound(const QuantFormat& f, const at::Tensor& x, const QuantizedWeight& qw,
                        const at::Tensor& ref) {
  at::Tensor b = kBf16Round * ref.abs() + kTiny;
  if (f.act == ActType::kFp8E4M3PerToken) {
    const QuantizedAct qa = quantize_act_ref(x, f);
    at::Tensor ax = qa.q.to(at::kFloat).to(at::kDouble).abs() * qa.scale.to(at::kDouble);
    at::Tensor aw = qw.q.to(at::kFloat).to(at::kDouble).abs() * qw.scale.to(at::kDouble);
    const double k = static_cast<double>(qw.q.size(1));
    b = b + (1 + std::ldexp(1.0, -7)) * k * kFp32Round * at::matmul(ax, aw.t());
  }
  return b;
}

TEST(AqKernelsCuda, GemvMatchesLinearRefAndResidualRoundsTwice) {
  REQUIRE_CUDA();
  at::manual_seed(12);
  // (N, K). N picks the rows per warp R on a 132-SM H100 / H200 (R = 1 below 4224, 2 below 8448,
  // 4 above; U = 8 / R loads per row in flight), and K the path through the row loop (k16 = K / 16
  // vectors, lane l takes l, l + 32, ...): groups of U vectors, then single vectors.
  //   R = 1: K = 16, 48 single vectors only (most lanes idle); 4096, 1 group; 14336, 3 groups
  //          and 4 singles, and x staged above the 48 KiB default at M = 4.
  //   R = 2: K = 4112 (257 vectors), 2 groups (+ 1 single on lane 0).
  //   R = 4: K = 1040 (65 vectors), 1 group (+ 1 single on lane 0).
  // N = 5001 and 9002 end inside a warp's rows (the clamped re-read of the last row) and inside
  // a block (warps past the end).
  const std::pair<int64_t, int64_t> shapes[] = {{40, 16},    {1000, 48},   {256, 4096},
                                                {64, 14336}, {5001, 4112}, {9002, 1040}};
  for (const char* name : {"w8a8", "fp8_e4m3"}) {
    const QuantFormat& f = find_format(name);
    for (const auto& [N, K] : shapes) {
      const at::Tensor w = at::randn({N, K}, at::kFloat) * 0.05;
      const QuantizedWeight qw = quantize_ref(w, f);
      const PackedWeight pw = pack(qw).to(at::kCUDA);
      for (int64_t M = 1; M <= cuda::kMaxGemvRows; ++M) {
        SCOPED_TRACE(::testing::Message() << name << " M " << M << " N " << N << " K " << K);
        const at::Tensor x = at::randn({M, K}, at::kFloat).to(at::kBFloat16);
        const auto [qx, sx] = quantize_act_cuda(f, x.cuda());
        const at::Tensor y = gemv_cuda(f, qx, sx, pw, nullptr);
        ASSERT_EQ(y.scalar_type(), at::kBFloat16);
        const at::Tensor ref = linear_ref(x, qw, at::kDouble);
        EXPECT_TRUE(within(y, ref, output_bound(f, x, qw, ref)));
        // The residual epilogue equals the unfused r + y, rounded twice.
        const at::Tensor res =
            at::randn({M, N}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
        const at::Tensor y_res = gemv_cuda(f, qx, sx, pw, &res);
        EXPECT_TRUE(bits_equal(y_res, (res.to(at::kFloat) + y.to(at::kFloat)).to(at::kBFloat16)));
      }
    }
  }
}

TEST(AqKernelsCuda, ScaleEpilogueOfIntMmMatchesLinearRef) {
  REQUIRE_CUDA();
  at::manual_seed(13);
  const QuantFormat& f = find_format("w8a8");
  const int64_t N = 264, K = 1024;  // _int_mm: M > 16, K and N multiples of 8
  const at::Tensor w = at::randn({N, K}, at::kFloat) * 0.05;
  const QuantizedWeight qw = quantize_ref(w, f);
  const PackedWeight pw = pack(qw).to(at::kCUDA);
  for (int64_t M : {17, 128, 2048}) {
    SCOPED_TRACE(::testing::Message() << "M " << M);
    const at::Tensor x = at::randn({M, K}, at::kFloat).to(at::kBFloat16);
    const auto [qx, sx] = cuda::quantize_act_int8(x.cuda());
    const at::Tensor acc = at::_int_mm(qx, pw.data.t());
    const at::Tensor y = cuda::scale_epilogue(acc, sx, pw.scale, nullptr);
    const at::Tensor ref = linear_ref(x, qw, at::kDouble);
    EXPECT_TRUE(within(y, ref, output_bound(f, x, qw, ref)));
    // sw as [N] instead of [N, 1]: same values.
    EXPECT_TRUE(bits_equal(cuda::scale_epilogue(acc, sx, pw.scale.reshape({N}), nullptr), y));
    const at::Tensor res =
        at::randn({M, N}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
    EXPECT_TRUE(bits_equal(cuda::scale_epilogue(acc, sx, pw.scale, &res),
                           (res.to(at::kFloat) + y.to(at::kFloat)).to(at::kBFloat16)));
  }
}

TEST(AqKernelsCuda, ScaleEpilogueScalarPathForOddN) {
  REQUIRE_CUDA();
  at::manual_seed(14);
  // N % 8 != 0 takes the one-element-per-thread path; _int_mm cannot produce it, so the exact
  // int32 dot comes from a double matmul (exact: |dot| <= K 127^2 << 2^53).
  const QuantFormat& f = find_format("w8a8");
  const int64_t M = 5, N = 13, K = 96;
  const at::Tensor w = at::randn({N, K}, at::kFloat) * 0.05;
  const QuantizedWeight qw = quantize_ref(w, f);
  const at::Tensor x = at::randn({M, K}, at::kFloat).to(at::kBFloat16);
  const QuantizedAct qa = quantize_act_ref(x, f);
  const at::Tensor acc = at::matmul(qa.q.to(at::kDouble), qw.q.to(at::kDouble).t()).to(at::kInt);
  const at::Tensor y = cuda::scale_epilogue(acc.cuda(), qa.scale.cuda(), qw.scale.cuda(), nullptr);
  const at::Tensor ref = linear_ref(x, qw, at::kDouble);
  EXPECT_TRUE(within(y, ref, output_bound(f, x, qw, ref)));
  const at::Tensor res =
      at::randn({M, N}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  EXPECT_TRUE(bits_equal(cuda::scale_epilogue(acc.cuda(), qa.scale.cuda(), qw.scale.cuda(), &res),
                         (res.to(at::kFloat) + y.to(at::kFloat)).to(at::kBFloat16)));
}

TEST(AqKernelsCuda, RejectsBadArguments) {
  REQUIRE_CUDA();
  const auto on_gpu = [](at::ScalarType t) {
    return at::TensorOptions().device(at::kCUDA).dtype(t);
  };
  const at::Tensor qx = at::zeros({2, 64}, on_gpu(at::kChar));
  const at::Tensor sx = at::ones({2, 1}, on_gpu(at::kFloat));
  const at::Tensor data = at::zeros({8, 64}, on_gpu(at::kChar));
  const at::Tensor sw = at::ones({8, 1}, on_gpu(at::kFloat));
  EXPECT_NO_THROW(cuda::gemv_w8a8(qx, sx, data, sw, nullptr));
  // M above kMaxGemvRows.
  EXPECT_THROW(cuda::gemv_w8a8(at::zeros({5, 64}, on_gpu(at::kChar)),
                               at::ones({5, 1}, on_gpu(at::kFloat)), data, sw, nullptr),
               c10::Error);
  // K % 16 != 0.
  EXPECT_THROW(cuda::gemv_w8a8(at::zeros({2, 24}, on_gpu(at::kChar)), sx,
                               at::zeros({8, 24}, on_gpu(at::kChar)), sw, nullptr),
               c10::Error);
  // e4m3 data in the int8 GEMV, a CPU weight, a K mismatch, a wrong scale shape.
  EXPECT_THROW(cuda::gemv_w8a8(qx, sx, data.to(at::kFloat).to(at::kFloat8_e4m3fn), sw, nullptr),
               c10::Error);
  EXPECT_THROW(cuda::gemv_w8a8(qx, sx, data.cpu(), sw, nullptr), c10::Error);
  EXPECT_THROW(cuda::gemv_w8a8(qx, sx, at::zeros({8, 32}, on_gpu(at::kChar)), sw, nullptr),
               c10::Error);
  EXPECT_THROW(cuda::gemv_w8a8(qx, sx, data, at::ones({4, 1}, on_gpu(at::kFloat)), nullptr),
               c10::Error);
  // A residual of the wrong shape; a non-contiguous qx.
  const at::Tensor bad_res = at::zeros({2, 9}, on_gpu(at::kBFloat16));
  EXPECT_THROW(cuda::gemv_w8a8(qx, sx, data, sw, &bad_res), c10::Error);
  EXPECT_THROW(cuda::gemv_w8a8(at::zeros({64, 2}, on_gpu(at::kChar)).t(), sx, data, sw, nullptr),
               c10::Error);
  // The quantizers take bf16 only; the epilogue takes int32 only.
  EXPECT_THROW(cuda::quantize_act_int8(at::zeros({2, 64}, on_gpu(at::kFloat))), c10::Error);
  EXPECT_THROW(cuda::quantize_act_fp8(at::zeros({2, 64}, at::kBFloat16)), c10::Error);
  EXPECT_THROW(cuda::scale_epilogue(at::zeros({2, 8}, on_gpu(at::kFloat)), sx, sw, nullptr),
               c10::Error);
}

}  // namespace
}  // namespace jointnas::quant
