// The weight-only kernels (quant/gemv_w4_cuda.cu, gemv_w4_tc_cuda.cu, gemv_w8a16_cuda.cu,
// dequant_cuda.cu: w4a16 / w8a16 GEMV and dequantization) against
// the references of quantize.h (label `cuda`): dequantization bitwise, the GEMVs within the
// elementwise bound derived at gemv_bound below.
//
// Weights are quantized on the CPU (quantize_ref is the definition; ATen on CUDA may divide
// through a reciprocal), packed, and moved to the device; the references then run on the device
// from the unpacked device copy, whose values are bit-identical (pack / unpack round trip).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::quant {
namespace {

#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"

at::TensorOptions on_gpu(at::ScalarType t) {
  return at::TensorOptions().device(at::kCUDA).dtype(t);
}

struct Case {
  int64_t n;
  int64_t k;
  int64_t group;  // w4 only; K = one group per row
};

// The all-zero row of weights with N >= 3 (a masked channel: its outputs must be exactly 0, or
// exactly the residual).
int64_t masked_row(int64_t n) { return n >= 3 ? n / 2 : -1; }

// w [N, K] ~ 0.02 N(0, 1) with the masked row zeroed, quantized on the CPU with `group` columns
// per scale.
QuantizedWeight quantize_cpu(const QuantFormat& f, int64_t n, int64_t k, int64_t group) {
  at::Tensor w = at::randn({n, k}) * 0.02;  // [N, K] fp32
  if (masked_row(n) >= 0) w.select(0, masked_row(n)).zero_();
  return quantize_on_grid(w, weight_grid(w, f, group));
}

// The device copy: packed as the kernels read it, and unpacked for the references.
struct DeviceWeight {
  PackedWeight packed;
  QuantizedWeight ref;
};

DeviceWeight to_device(const QuantizedWeight& qw) {
  DeviceWeight d;
  d.packed = pack(qw).to(at::kCUDA);
  d.ref = unpack(d.packed);
  return d;
}

// Bitwise equality through the raw bytes (-0 / +0 and NaN payloads must match too), with the
// first differing element on failure.
::testing::AssertionResult bits_equal(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes() || got.scalar_type() != want.scalar_type()) {
    return ::testing::AssertionFailure() << "got " << got.scalar_type() << " " << got.sizes()
                                         << ", want " << want.scalar_type() << " " << want.sizes();
  }
  const at::ScalarType raw = got.element_size() == 4 ? at::kInt : at::kShort;
  at::Tensor a = got.cpu().contiguous().view(raw).reshape({-1});
  at::Tensor b = want.cpu().contiguous().view(raw).reshape({-1});
  at::Tensor diff = a.ne(b);
  const int64_t bad = diff.sum().item<int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const int64_t i = diff.to(at::kByte).argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << bad << " of " << a.numel() << " elements differ; first at flat index " << i << ": got "
         << got.cpu().reshape({-1})[i].item<double>() << ", want "
         << want.cpu().reshape({-1})[i].item<double>();
}

// Elementwise |got - ref| <= bound (NaN never passes), reporting the worst element as (m, n).
::testing::AssertionResult within(const at::Tensor& got, const at::Tensor& ref,
                                  const at::Tensor& bound) {
  if (got.sizes() != ref.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << ref.sizes();
  }
  at::Tensor err = (got.to(at::kDouble) - ref).abs();
  // Excess over the bound; NaN (a NaN result) counts as infinitely far out.
  at::Tensor excess = (err - bound).nan_to_num(std::numeric_limits<double>::infinity());
  const int64_t bad = (excess > 0).sum().item<int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const int64_t i = excess.reshape({-1}).argmax().item<int64_t>(), n = got.size(-1);
  auto at_i = [&](const at::Tensor& t) { return t.reshape({-1})[i].item<double>(); };
  return ::testing::AssertionFailure()
         << bad << " of " << got.numel() << " elements out of bound; worst at (m " << i / n
         << ", n " << i % n << "): got " << at_i(got) << ", ref " << at_i(ref) << ", bound "
         << at_i(bound) << ", |err| " << at_i(err);
}

// Bound for y = bf16(sum_k w_hat[n, k] x[m, k]) against ref = the exact (double) sum:
//   * the products are exact in fp32 ((q - z) or q times a bf16 x), and the kernels sum them in
//     fp32 in some order, times the scale once: at most ~K roundings of 2^-24 of the running
//     magnitude, i.e. <= K 2^-24 (|x| @ |w_hat|^T) (w8: the reference's w_hat = fp32(q s) adds
//     one more 2^-24 relative, inside the same allowance for K >= 32);
//   * the output rounding to bf16: <= 2^-9 |y|, doubled for safety: 2^-8 |ref|;
//   * with a residual, y = bf16(r + bf16(acc)): one more rounding, <= 2^-8 |r + ref|.
// With the fp32 accumulation error this is also what linear_bound.h gives the GEMV paths.
at::Tensor gemv_bound(const at::Tensor& x, const QuantizedWeight& qw, const at::Tensor& ref,
                      const at::Tensor* residual) {
  const double k = static_cast<double>(x.size(1));
  at::Tensor w_hat = dequantize_ref(qw, at::kFloat).to(at::kDouble);      // [N, K]
  at::Tensor mag = at::matmul(x.to(at::kDouble).abs(), w_hat.abs().t());  // [M, N]
  at::Tensor b = k * std::ldexp(1.0, -24) * mag + std::ldexp(1.0, -8) * ref.abs();
  if (residual != nullptr) b = b + std::ldexp(1.0, -8) * (residual->to(at::kDouble) + ref).abs();
  return b;
}

// Runs the GEMV for M = 1..4 (rows of one x [4, K]) with and without a residual and checks each
// against linear_ref.
template <typename Gemv>
void check_gemv(const DeviceWeight& dw, Gemv gemv, const std::string& what) {
  const int64_t n = dw.packed.out_features, k = dw.packed.in_features;
  at::Tensor x4 = at::randn({cuda::kMaxGemvRows, k}, on_gpu(at::kBFloat16));  // [4, K] bf16
  at::Tensor r4 = at::randn({cuda::kMaxGemvRows, n}, on_gpu(at::kBFloat16));  // [4, N] bf16
  for (int64_t m = 1; m <= cuda::kMaxGemvRows; ++m) {
    at::Tensor x = x4.narrow(0, 0, m), r = r4.narrow(0, 0, m);
    at::Tensor ref = linear_ref(x, dw.ref, at::kDouble);  // [M, N] double
    at::Tensor y = gemv(x, nullptr);
    ASSERT_EQ(y.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(within(y, ref, gemv_bound(x, dw.ref, ref, nullptr))) << what << " M=" << m;
    at::Tensor yr = gemv(x, &r);
    EXPECT_TRUE(within(yr, ref + r.to(at::kDouble), gemv_bound(x, dw.ref, ref, &r)))
        << what << " M=" << m << " with residual";
    // The masked row: exactly zero, exactly the residual.
    if (const int64_t z = masked_row(n); z >= 0) {
      EXPECT_EQ(y.select(1, z).abs().max().item<float>(), 0.f) << what << " M=" << m;
      EXPECT_TRUE(at::equal(yr.select(1, z), r.select(1, z))) << what << " M=" << m;
    }
  }
}

std::string describe(const Case& c) {
  return "N=" + std::to_string(c.n) + " K=" + std::to_string(c.k) +
         " group=" + std::to_string(c.group);
}

TEST(WoKernelsCuda, DequantW4BitwiseEqualsReference) {
  REQUIRE_CUDA();
  at::manual_seed(11);
  const QuantFormat& f = find_format("w4a16_g128");
  // Groups 32 / 64 / 128 / one per row, N not a multiple of anything; K = 172 (stories260K, one
  // group per row, K % 8 != 0) takes the any-shape kernel.
  for (const Case& c : std::vector<Case>{{1, 32, 32},
                                         {37, 96, 32},
                                         {37, 96, 96},
                                         {4099, 4096, 128},
                                         {37, 4096, 64},
                                         {130, 14336, 128},
                                         {37, 172, 172},
                                         {5, 200, 8}}) {
    const QuantizedWeight qw = quantize_cpu(f, c.n, c.k, c.group);
    const PackedWeight pw = pack(qw).to(at::kCUDA);
    for (c10::ScalarType dt : {at::kBFloat16, at::kFloat, at::kHalf}) {
      EXPECT_TRUE(bits_equal(cuda::dequant_w4(pw.data, pw.scale, pw.zero, pw.group, dt),
                             dequantize_ref(qw, dt)))
          << describe(c) << " " << dt;
    }
  }
}

TEST(WoKernelsCuda, DequantW8BitwiseEqualsReference) {
  REQUIRE_CUDA();
  at::manual_seed(12);
  const QuantFormat& f = find_format("w8a16");
  for (const Case& c : std::vector<Case>{
           {1, 32, 0}, {37, 96, 0}, {4099, 4096, 0}, {37, 14336, 0}, {37, 172, 0}, {3, 12, 0}}) {
    const QuantizedWeight qw = quantize_cpu(f, c.n, c.k, c.k);
    const PackedWeight pw = pack(qw).to(at::kCUDA);
    for (c10::ScalarType dt : {at::kBFloat16, at::kFloat, at::kHalf}) {
      EXPECT_TRUE(bits_equal(cuda::dequant_w8(pw.data, pw.scale, dt), dequantize_ref(qw, dt)))
          << describe(c) << " " << dt;
    }
  }
}

// Shapes of the int4 GEMV tests. N = 1, 37, 4099, 9000: not multiples of the 16 rows per block
// (8 warps x 2 or 4 rows) or of a 16-row tensor-core tile. K = 32 and 96: fewer vectors than
// lanes, partial chunks; 4096 / 14336: the Llama shapes (14336 = 3.5 chunks per lane); N = 14336
// with K = 4096: several rows per warp of a persistent grid; 28672: at M = 4 more than the shared
// memory of one block (the rows of x are split over two launches). At M = 1 the default takes
// tensor cores for N >= 8192 with K <= 4096 and for K >= 8192 at groups of 128 (4099 x 4096 is not
// tall enough; 14336 x 4096, 9000 x 4096, 4096 x 14336, 37 x 14336 and 37 x 28672 take them);
// 28672 at group 64 keeps the register kernel with x staged as bf16.
std::vector<Case> w4_gemv_cases() {
  return {{1, 32, 32},       {37, 96, 32},       {37, 96, 96},      {37, 192, 64},
          {4099, 4096, 128}, {14336, 4096, 128}, {9000, 4096, 128}, {1, 4096, 64},
          {37, 14336, 128},  {4096, 14336, 128}, {37, 28672, 128},  {37, 28672, 64}};
}

TEST(WoKernelsCuda, GemvW4MatchesLinearRef) {
  REQUIRE_CUDA();
  at::manual_seed(13);
  const QuantFormat& f = find_format("w4a16_g128");
  for (const Case& c : w4_gemv_cases()) {
    const DeviceWeight dw = to_device(quantize_cpu(f, c.n, c.k, c.group));
    const PackedWeight& pw = dw.packed;
    check_gemv(
        dw,
        [&](const at::Tensor& x, const at::Tensor* r) {
          return cuda::gemv_w4a16(x, pw.data, pw.scale, pw.zero, pw.group, r);
        },
        "w4 " + describe(c));
  }
}

// The tensor-core variants (100: auto warps per 16-row tile; 101 / 102 / 104 / 108: 1, 2, 4, 8):
// the same shapes and bound; groups 32 / 64 / 128 / one per row take the 4-, 8- and 16-byte
// loads; N = 37, 4099 end in a partial 16-row tile; K = 28672 at M = 3, 4 splits the rows of x.
TEST(WoKernelsCuda, GemvW4TensorCoreMatchesLinearRef) {
  REQUIRE_CUDA();
  at::manual_seed(15);
  const QuantFormat& f = find_format("w4a16_g128");
  for (const Case& c : std::vector<Case>{{1, 32, 32},
                                         {37, 96, 32},
                                         {37, 96, 96},
                                         {37, 192, 64},
                                         {37, 384, 128},
                                         {4099, 4096, 128},
                                         {37, 4096, 64},
                                         {1, 4096, 64},
                                         {37, 14336, 128},
                                         {4096, 14336, 128},
                                         {37, 28672, 128}}) {
    const DeviceWeight dw = to_device(quantize_cpu(f, c.n, c.k, c.group));
    const PackedWeight& pw = dw.packed;
    for (int variant : {100, 101, 102, 104, 108}) {
      if (variant != 100 && c.n > 64 && c.k > 4096) continue;  // keep the test short
      check_gemv(
          dw,
          [&](const at::Tensor& x, const at::Tensor* r) {
            return cuda::gemv_w4a16(x, pw.data, pw.scale, pw.zero, pw.group, r, variant);
          },
          "w4 tensor cores, variant " + std::to_string(variant) + " " + describe(c));
    }
  }
}

TEST(WoKernelsCuda, GemvW8MatchesLinearRef) {
  REQUIRE_CUDA();
  at::manual_seed(14);
  const QuantFormat& f = find_format("w8a16");
  for (const Case& c : std::vector<Case>{{1, 32, 0},
                                         {37, 96, 0},
                                         {4099, 4096, 0},
                                         {37, 14336, 0},
                                         {4096, 14336, 0},
                                         {37, 28672, 0}}) {
    const DeviceWeight dw = to_device(quantize_cpu(f, c.n, c.k, c.k));
    const PackedWeight& pw = dw.packed;
    check_gemv(
        dw,
        [&](const at::Tensor& x, const at::Tensor* r) {
          return cuda::gemv_w8a16(x, pw.data, pw.scale, r);
        },
        "w8 " + describe(c));
  }
}

TEST(WoKernelsCuda, RejectsBadArguments) {
  REQUIRE_CUDA();
  const DeviceWeight w4 = to_device(quantize_cpu(find_format("w4a16_g128"), 8, 64, 32));
  const DeviceWeight w8 = to_device(quantize_cpu(find_format("w8a16"), 8, 64, 64));
  const PackedWeight& p4 = w4.packed;
  const PackedWeight& p8 = w8.packed;
  const at::Tensor x = at::randn({1, 64}, on_gpu(at::kBFloat16));
  auto w4_gemv = [&](const at::Tensor& xx, int64_t group, const at::Tensor* r = nullptr) {
    return cuda::gemv_w4a16(xx, p4.data, p4.scale, p4.zero, group, r);
  };
  EXPECT_NO_THROW(w4_gemv(x, 32));
  EXPECT_THROW(w4_gemv(at::randn({5, 64}, on_gpu(at::kBFloat16)), 32), c10::Error);  // M > 4
  EXPECT_THROW(w4_gemv(at::randn({1, 64}, on_gpu(at::kFloat)), 32), c10::Error);     // dtype
  EXPECT_THROW(w4_gemv(at::randn({1, 96}, on_gpu(at::kBFloat16)), 32), c10::Error);  // K
  EXPECT_THROW(w4_gemv(x.cpu(), 32), c10::Error);                                    // device
  EXPECT_THROW(w4_gemv(x, 64), c10::Error);  // scale / zero shapes for another group
  const at::Tensor bad_r = at::randn({1, 9}, on_gpu(at::kBFloat16));
  EXPECT_THROW(w4_gemv(x, 32, &bad_r), c10::Error);
  // K = 48 packs (K even) but is no multiple of the 32-value vectors.
  const DeviceWeight w4k48 = to_device(quantize_cpu(find_format("w4a16_g128"), 8, 48, 48));
  const PackedWeight& pk = w4k48.packed;
  EXPECT_THROW(cuda::gemv_w4a16(at::randn({1, 48}, on_gpu(at::kBFloat16)), pk.data, pk.scale,
                                pk.zero, pk.group, nullptr),
               c10::Error);
  EXPECT_THROW(cuda::gemv_w8a16(at::randn({1, 64}, on_gpu(at::kHalf)), p8.data, p8.scale, nullptr),
               c10::Error);
  EXPECT_THROW(cuda::dequant_w8(p8.data, p8.scale, at::kDouble), c10::Error);
  EXPECT_THROW(cuda::dequant_w4(p4.data, p4.scale, p4.zero, 48, at::kBFloat16), c10::Error);
}

}  // namespace
}  // namespace jointnas::quant
