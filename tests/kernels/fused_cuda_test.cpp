// Fused CUDA kernels against their ATen references on the same device (label `cuda`).
// Tolerances: the kernels compute in fp32 with the reference's rounding points; only summation
// order differs (the RMS statistic), which can flip one rounding of the normalized value n, and the
// weight product y = w * n is rounded again: 1 ulp of n plus 1 ulp of y. A bf16 ulp is 2^-8 to 2^-7
// of the value (2^-7 just above a power of two), so the bound is rtol 2^-6 for bf16; 1e-5 for fp32.
// (2^-7, one ulp at the worst, failed 7 of 243712 elements at H = 14336.) RoPE and SiLU * mul
// keep rtol 2^-7.
#include <cmath>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/kernels/decode_attention.h"
#include "jointnas/kernels/fused.h"
#include "jointnas/kernels/linear.h"
#include "tensor_assert.h"

using namespace jointnas;

namespace {
#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"
double rtol_for(at::ScalarType t) { return t == at::kBFloat16 ? 1.0 / 128 : 1e-5; }
// RMSNorm: the two roundings above (1 ulp of n, 1 of y).
double norm_rtol(at::ScalarType t) { return t == at::kBFloat16 ? 1.0 / 64 : 1e-5; }
at::TensorOptions on_gpu(at::ScalarType t) { return at::TensorOptions().device(at::kCUDA).dtype(t); }
}  // namespace

TEST(FusedCuda, RmsNormMatchesReference) {
  REQUIRE_CUDA();
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t H : {64, 384, 4096, 4099, 14336, 20000}) {  // vector kernel (V = 1, 2, 4, 8), scalar
      for (int64_t rows : {1, 3, 17}) {
        at::Tensor x = at::randn({rows, H}, on_gpu(dt)) * 3;
        at::Tensor w = 1 + 0.1 * at::randn({H}, on_gpu(dt));
        at::Tensor got = kernels::rms_norm(x, w, 1e-5), ref = kernels::rms_norm_ref(x, w, 1e-5);
        EXPECT_TRUE(jointnas::testing::all_close(got, ref, 1e-6, norm_rtol(dt))) << H << " " << rows;
      }
    }
  }
}

TEST(FusedCuda, RopeAndCacheMatchesReference) {
  REQUIRE_CUDA();
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t hd : {8, 64, 128}) {
      for (int64_t T : {1, 5}) {
        const int64_t B = 2, nh = 4, nkv = 2, L = 40, P = 64;
        at::Tensor qkv = at::randn({B, T, (nh + 2 * nkv) * hd}, on_gpu(dt));
        at::Tensor pos = at::randperm(L, on_gpu(at::kLong)).narrow(0, 0, T);
        at::Tensor ang = at::rand({P, hd / 2}, on_gpu(at::kFloat)) * 50;
        at::Tensor cos = at::cat({ang, ang}, -1).cos().contiguous(), sin = at::cat({ang, ang}, -1).sin().contiguous();
        at::Tensor k1 = at::zeros({B, nkv, L, hd}, on_gpu(dt)), v1 = at::zeros_like(k1);
        at::Tensor k2 = at::zeros_like(k1), v2 = at::zeros_like(k1);
        at::Tensor q1 = kernels::rope_and_cache(qkv, pos, cos, sin, nh, nkv, hd, k1, v1);
        at::Tensor q2 = kernels::rope_and_cache_ref(qkv, pos, cos, sin, nh, nkv, hd, k2, v2);
        // |q| ~ 1.4 at most ~4: 2 ulps relative plus 2 ulps of 4 absolute for cancellations.
        const double atol = dt == at::kBFloat16 ? 4.0 / 64 : 1e-5;
        EXPECT_TRUE(jointnas::testing::all_close(q1, q2, atol, rtol_for(dt))) << hd << " " << T;
        EXPECT_TRUE(jointnas::testing::all_close(k1, k2, atol, rtol_for(dt))) << hd << " " << T;
        EXPECT_TRUE(at::equal(v1, v2)) << "v is a plain copy";
      }
    }
  }
}

TEST(FusedCuda, SiluMulMatchesReference) {
  REQUIRE_CUDA();
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t I : {172, 173, 1152, 14336}) {  // scalar (bf16 172, 173) and 16-byte vector kernels
      at::Tensor gu = at::randn({3, 2 * I}, on_gpu(dt)) * 4;
      EXPECT_TRUE(jointnas::testing::all_close(kernels::silu_mul(gu), kernels::silu_mul_ref(gu), 1e-6,
                                                rtol_for(dt)))
          << I;
    }
  }
}

TEST(GemvCuda, MatchesFp32Reference) {
  REQUIRE_CUDA();
  // Reference: the same bf16 operands multiplied in fp32 (double-free: K <= 14336 keeps the fp32
  // accumulation error ~sqrt(K) 2^-24 |w||x|, far below the output's bf16 rounding). The kernel's
  // result is rounded once to bf16 (<= 2^-9 relative); cancellation makes small outputs relatively
  // noisy, so atol is 2^-8 of the row-norm scale |w_n| |x|.
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 8}, {3, 64}, {17, 1160}, {1024, 4096}, {4097, 4104}, {4096, 14336}}) {
    at::Tensor w = at::randn({N, K}, on_gpu(at::kBFloat16));
    at::Tensor x = at::randn({1, 1, K}, on_gpu(at::kBFloat16));
    ASSERT_TRUE(kernels::gemv_applies(x, w));
    at::Tensor got = kernels::linear(x, w);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 1, N}));
    at::Tensor ref = at::linear(x.to(at::kFloat), w.to(at::kFloat));
    const double scale = std::sqrt(static_cast<double>(K));  // |w_n||x| for unit normals
    EXPECT_TRUE(jointnas::testing::all_close(got, ref, scale / 256, 1.0 / 256)) << N << "x" << K;
    for (int v : {14, 18, 24, 42, 44}) {  // every tiling, including row counts not divisible by R
      EXPECT_TRUE(jointnas::testing::all_close(kernels::gemv_bf16(x, w, v), ref.view({N}), scale / 256,
                                                1.0 / 256))
          << N << "x" << K << " variant " << v;
    }
  }
  // Logits: the fp32 sum unrounded, from the GEMV (one row) and from cuBLAS (more rows). Only the
  // summation order differs from the reference: ~sqrt(K) 2^-24 |w_n||x|; atol 2^-16 of the scale.
  for (auto [M, N, K] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 4097, 4104}, {1, 3, 64}, {5, 1000, 4096}}) {
    at::Tensor w3 = at::randn({N, K}, on_gpu(at::kBFloat16));
    at::Tensor x3 = at::randn({1, M, K}, on_gpu(at::kBFloat16));
    at::Tensor got = kernels::linear_logits(x3, w3);
    ASSERT_EQ(got.scalar_type(), at::kFloat);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, M, N}));
    const double scale = std::sqrt(static_cast<double>(K));
    EXPECT_TRUE(jointnas::testing::all_close(got, at::linear(x3.to(at::kFloat), w3.to(at::kFloat)), scale / 65536, 1e-5))
        << M << "x" << N << "x" << K;
  }
  // Fused residual: exactly the unfused expression r + bf16(W x) when both use the GEMV.
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {17, 1160}}) {
    at::Tensor w2 = at::randn({N, K}, on_gpu(at::kBFloat16));
    at::Tensor x2 = at::randn({1, 1, K}, on_gpu(at::kBFloat16));
    at::Tensor r2 = at::randn({1, 1, N}, on_gpu(at::kBFloat16));
    EXPECT_TRUE(at::equal(kernels::linear_add(x2, w2, r2), r2 + kernels::linear(x2, w2))) << N;
  }
  // Cases the GEMV does not take fall back to at::linear.
  at::Tensor w = at::randn({8, 12}, on_gpu(at::kBFloat16));
  EXPECT_FALSE(kernels::gemv_applies(at::randn({1, 12}, on_gpu(at::kBFloat16)), w));  // K % 8
  EXPECT_FALSE(kernels::gemv_applies(at::randn({2, 8}, on_gpu(at::kBFloat16)),
                                     at::randn({4, 8}, on_gpu(at::kBFloat16))));  // M = 2
}

TEST(DecodeAttentionCuda, MatchesSdpaOnValidPrefix) {
  REQUIRE_CUDA();
  // fp32 softmax statistics and accumulation in both; the output is rounded once to the dtype
  // (2^-9 relative in bf16). Outputs are convex combinations of v (|v| <~ 4), so atol 2 bf16 ulps
  // of 4 = 2^-5, rtol 2^-7; fp32: exp/sum-order differences only, 1e-5.
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t hd : {64, 128}) {
      for (int64_t G : {1, 3, 4, 8}) {
        // One block per KV head (decode_attn_single) up to L = 512 (G <= 4) or 256 (G = 8), else
        // split-K and combine.
        for (int64_t L : {200, 300, 700}) {
          const int64_t B = 2, nkv = 3;
          at::Tensor q = at::randn({B, nkv, G, hd}, on_gpu(dt));
          at::Tensor k = at::randn({B, nkv, L, hd}, on_gpu(dt)), v = at::randn({B, nkv, L, hd}, on_gpu(dt));
          // Poison the invalid tail: the kernel must never read past pos.
          for (int64_t pos : {int64_t{0}, int64_t{1}, int64_t{63}, int64_t{64}, int64_t{199}, L - 1}) {
            at::Tensor kp = k.clone(), vp = v.clone();
            if (pos + 1 < L) {
              kp.narrow(2, pos + 1, L - pos - 1).fill_(1e4);
              vp.narrow(2, pos + 1, L - pos - 1).fill_(NAN);
            }
            const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
            ASSERT_TRUE(kernels::decode_attention_applies(q, kp));
            at::Tensor got = kernels::decode_attention(q, kp, vp, at::full({1}, pos, on_gpu(at::kLong)), scale);
            at::Tensor ref = kernels::decode_attention_ref(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), pos, scale);
            const bool bf = dt == at::kBFloat16;
            EXPECT_TRUE(jointnas::testing::all_close(got, ref, bf ? 1.0 / 32 : 1e-5, bf ? 1.0 / 128 : 1e-5))
                << "hd " << hd << " G " << G << " L " << L << " pos " << pos;
          }
        }
      }
    }
  }
}
