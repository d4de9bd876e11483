// Issue 24, acceptance 1: jointnas's ggml formats (quant/ggml_quants) against libggml itself,
// bit for bit: the blocks of ggml_quantize_chunk, the values of its to_float, and the activation
// rows ggml-cpu's matmul quantizes (from_float of the weight type's vec_dot_type). Random and
// adversarial rows. Skips (with a message) when scripts/setup_llama_cpp.sh has not been run.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jointnas/quant/ggml_quants.h"

#if JNAS_HAVE_LLAMA_CPP
#include <ggml-cpu.h>
#include <ggml.h>
#endif

namespace jointnas::quant::ggml {
namespace {

constexpr int64_t kRow = 1024;  // four K-quant super-blocks, 32 q8_0 blocks

// Rows of kRow values: random at several scales, and the cases quantizers get wrong.
std::vector<std::pair<std::string, std::vector<float>>> rows() {
  std::mt19937 gen(24);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::pair<std::string, std::vector<float>>> r;
  auto add = [&](const std::string& name, auto f) {
    std::vector<float> v(kRow);
    for (int64_t i = 0; i < kRow; ++i) v[i] = f(i);
    r.emplace_back(name, v);
  };
  for (float s : {0.02f, 1.0f, 300.0f}) add("normal*" + std::to_string(s), [&](int64_t) { return normal(gen) * s; });
  add("zeros", [](int64_t) { return 0.0f; });
  add("constant", [](int64_t) { return 0.37f; });
  add("constant_negative", [](int64_t) { return -1.25f; });
  add("constant_blocks", [](int64_t i) { return static_cast<float>((i / 32) % 5) - 2.0f; });
  add("outliers", [&](int64_t i) { return i % 97 == 3 ? 1e4f : normal(gen) * 0.01f; });
  add("negative_outlier", [&](int64_t i) { return i % 256 == 17 ? -5e3f : normal(gen) * 0.1f; });
  add("denormals", [&](int64_t) { return normal(gen) * 1e-40f; });
  add("tiny", [&](int64_t) { return normal(gen) * 1e-30f; });
  add("fp16_subnormal_range", [&](int64_t) { return normal(gen) * 1e-6f; });
  add("half_steps", [](int64_t i) { return static_cast<float>(i % 17) * 0.5f - 4.0f; });
  add("positive", [&](int64_t) { return std::fabs(normal(gen)) + 0.5f; });
  add("one_hot", [](int64_t i) { return i % 32 == 0 ? 1.0f : 0.0f; });
  add("mixed_scales", [&](int64_t i) { return normal(gen) * std::pow(10.0f, static_cast<float>(i / 128) - 4.0f); });
  return r;
}

const Type kWeightTypes[] = {Type::kF16, Type::kQ8_0, Type::kQ4_0, Type::kQ4_K, Type::kQ5_K, Type::kQ6_K};

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(GgmlQuants, RowBytesAndRejectsPartialBlocks) {
  EXPECT_EQ(row_bytes(Type::kQ4_K, 512), 288);
  EXPECT_EQ(row_bytes(Type::kQ8_0, 64), 68);
  EXPECT_EQ(row_bytes(Type::kQ6_K, 256), 210);
  EXPECT_THROW(row_bytes(Type::kQ4_K, 128), std::invalid_argument);
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> small(10);
  EXPECT_THROW(quantize_row(Type::kQ8_0, x, small), std::invalid_argument);
}

TEST(GgmlQuants, Fp16MatchesIeeeRoundToNearestEven) {
  // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even (1) wins; 1 + 3 * 2^-11 rounds up.
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1.0p-11f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1.0p-11f), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // overflows to inf
  EXPECT_EQ(fp32_to_fp16(0x1.0p-24f), 0x0001);  // smallest subnormal
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    EXPECT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h);
  }
}

#if JNAS_HAVE_LLAMA_CPP

ggml_type to_ggml(Type t) { return static_cast<ggml_type>(static_cast<uint32_t>(t)); }

class GgmlReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ggml_cpu_init(); }
};

TEST_F(GgmlReference, QuantizedBlocksAndValuesAreBitwiseGgmls) {
  for (Type t : kWeightTypes) {
    for (const auto& [name, x] : rows()) {
      SCOPED_TRACE(std::string(type_info(t).name) + " on " + name);
      const int64_t nbytes = row_bytes(t, kRow);
      ASSERT_EQ(static_cast<size_t>(nbytes), ggml_row_size(to_ggml(t), kRow));
      std::vector<uint8_t> ours(nbytes), theirs(nbytes);
      quantize_row(t, x, ours);
      const size_t written = ggml_quantize_chunk(to_ggml(t), x.data(), theirs.data(), 0, 1, kRow, nullptr);
      ASSERT_EQ(written, static_cast<size_t>(nbytes));
      int64_t first_diff = -1;
      for (int64_t i = 0; i < nbytes && first_diff < 0; ++i) {
        if (ours[i] != theirs[i]) first_diff = i;
      }
      EXPECT_EQ(first_diff, -1) << "first differing byte " << first_diff << " (block "
                                << first_diff / type_info(t).block_bytes << ")";
      std::vector<float> y_ours(kRow), y_theirs(kRow);
      dequantize_row(t, theirs, y_ours);
      ggml_get_type_traits(to_ggml(t))->to_float(theirs.data(), y_theirs.data(), kRow);
      int64_t bad = 0;
      for (int64_t i = 0; i < kRow; ++i) bad += bits(y_ours[i]) != bits(y_theirs[i]);
      EXPECT_EQ(bad, 0) << "dequantized values differing from ggml's to_float";
    }
  }
}

TEST_F(GgmlReference, ActivationRowsAreBitwiseGgmlCpus) {
  for (Type t : kWeightTypes) {
    const Type a = type_info(t).vec_dot_type;
    for (const auto& [name, x] : rows()) {
      SCOPED_TRACE(std::string(type_info(t).name) + " activations on " + name);
      std::vector<float> ours = x;
      fake_quant_activation_row(t, ours);
      // ggml-cpu: from_float of the vec_dot_type (the kernel the matmul runs), then its values.
      std::vector<uint8_t> q(ggml_row_size(to_ggml(a), kRow));
      ggml_get_type_traits_cpu(to_ggml(a))->from_float(x.data(), q.data(), kRow);
      std::vector<float> theirs(kRow);
      if (a == Type::kQ8_K) {
        // block_q8_K {float d; int8_t qs[256]; int16_t bsums[16]}: ggml has no to_float for it.
        for (int64_t b = 0; b < kRow / 256; ++b) {
          const uint8_t* blk = q.data() + b * 292;
          float d;
          std::memcpy(&d, blk, 4);
          for (int j = 0; j < 256; ++j) theirs[b * 256 + j] = d * static_cast<int8_t>(blk[4 + j]);
        }
      } else {
        ggml_get_type_traits(to_ggml(a))->to_float(q.data(), theirs.data(), kRow);
      }
      int64_t bad = 0, first = -1;
      for (int64_t i = 0; i < kRow; ++i) {
        if (bits(ours[i]) != bits(theirs[i]) && bad++ == 0) first = i;
      }
      EXPECT_EQ(bad, 0) << "first at " << first << ": x " << (first >= 0 ? x[first] : 0.0f) << ", ours "
                        << (first >= 0 ? ours[first] : 0.0f) << ", ggml " << (first >= 0 ? theirs[first] : 0.0f);
    }
  }
}

#else

TEST(GgmlReference, Skipped) {
  GTEST_SKIP() << "llama.cpp is not installed (run scripts/setup_llama_cpp.sh; CI's setup does): "
                  "the bitwise comparison against libggml did not run";
}

#endif

}  // namespace
}  // namespace jointnas::quant::ggml
