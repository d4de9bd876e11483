// The registry table. See format.h for what each column means and docs/formats.md for the why.
#include "jointnas/quant/format.h"

#include "jointnas/core/error.h"
#include "jointnas/quant/ggml_quants.h"

namespace jointnas::quant {

const std::vector<QuantFormat>& formats() {
  // clang-format off
  static const std::vector<QuantFormat> table = {
    // name          summary                                                  weight               bits asym  group scale          activations
    {"bf16",       "unquantized, compute dtype",                             WeightType::kNone,    16, false,   0, c10::kBFloat16, ActType::kNone, true, -1, "f16"},
    {"w8a16",      "int8 weights, per-channel symmetric fp32 scales",        WeightType::kInt,      8, false,   0, c10::kFloat,    ActType::kNone, true, -1, "q8_0"},
    {"w4a16_g128", "int4 weights, asymmetric, groups of 128 along K, bf16 scales, uint8 zeros",
                                                                             WeightType::kInt,      4, true,  128, c10::kBFloat16, ActType::kNone, true, -1, "q4_k"},
    {"w8a8",       "int8 weights per channel x int8 activations per token, symmetric, dynamic",
                                                                             WeightType::kInt,      8, false,   0, c10::kFloat,    ActType::kInt8PerToken, true, -1, "q8_0"},
    {"fp8_e4m3",   "e4m3 weights per channel x e4m3 activations per token, dynamic (Hopper)",
                                                                             WeightType::kFp8E4M3,  8, false,   0, c10::kFloat,    ActType::kFp8E4M3PerToken, /*fast_on_cpu=*/false, -1, "q8_0"},
    // ggml's formats (quant/ggml_quants.h): blocks exactly as llama.cpp stores them; activations
    // quantized as ggml-cpu's matmul does. `group` is the block; bits and scales are ggml's.
    {"f16",        "ggml f16 weights (fp16 activations in ggml-cpu's matmul)",
                                                                             WeightType::kGgml,    16, false,   0, c10::kHalf,     ActType::kGgml, true, 1, ""},
    {"q8_0",       "ggml q8_0: blocks of 32 int8 with an fp16 scale (q8_0 activations)",
                                                                             WeightType::kGgml,     8, false,  32, c10::kHalf,     ActType::kGgml, true, 8, ""},
    {"q4_0",       "ggml q4_0: blocks of 32 4-bit values with an fp16 scale (q8_0 activations)",
                                                                             WeightType::kGgml,     4, false,  32, c10::kHalf,     ActType::kGgml, true, 2, ""},
    {"q4_k",       "ggml q4_K: super-blocks of 256, 6-bit sub-block scales and mins (q8_K activations)",
                                                                             WeightType::kGgml,     4, true,  256, c10::kHalf,     ActType::kGgml, true, 12, ""},
    {"q5_k",       "ggml q5_K: q4_K with a fifth bit per value (q8_K activations)",
                                                                             WeightType::kGgml,     5, true,  256, c10::kHalf,     ActType::kGgml, true, 13, ""},
    {"q6_k",       "ggml q6_K: super-blocks of 256, 16 int8 sub-block scales, 6-bit values (q8_K activations)",
                                                                             WeightType::kGgml,     6, false, 256, c10::kHalf,     ActType::kGgml, true, 14, ""},
  };
  // clang-format on
  return table;
}

int64_t QuantFormat::block() const {
  return weight == WeightType::kGgml ? ggml::type_info(static_cast<ggml::Type>(ggml_type)).block : 1;
}

int64_t QuantFormat::weight_bytes(int64_t n, int64_t k) const {
  if (weight == WeightType::kGgml) return n * ggml::row_bytes(static_cast<ggml::Type>(ggml_type), k);
  if (!quantized()) return n * k * weight_bits / 8;
  const int64_t groups = k / group_for(k);
  return n * k * weight_bits / 8 + n * groups * static_cast<int64_t>(c10::elementSize(scale_dtype)) +
         (asymmetric ? n * groups : 0);
}

int QuantFormat::qmin() const {
  if (weight != WeightType::kInt) return 0;
  return asymmetric ? 0 : -((1 << (weight_bits - 1)) - 1);
}

int QuantFormat::qmax() const {
  if (weight != WeightType::kInt) return 0;
  return asymmetric ? (1 << weight_bits) - 1 : (1 << (weight_bits - 1)) - 1;
}

int64_t QuantFormat::group_for(int64_t in_features) const {
  // ggml's blocks are fixed (the whole row is one "group" to the callers that slice by groups).
  if (!quantized() || group == 0 || in_features <= 0 || weight == WeightType::kGgml) return in_features;
  if (in_features % group == 0) return group;
  for (int64_t g : {int64_t{64}, int64_t{32}}) {
    if (g < group && in_features % g == 0) return g;
  }
  return in_features;
}

bool QuantFormat::allows_group(int64_t in_features, int64_t g) const {
  if (g == group_for(in_features)) return true;
  if (!quantized() || group == 0 || weight == WeightType::kGgml || g <= 0 || in_features % g != 0) return false;
  return (g == 64 || g == 32) && g < group;
}

double QuantFormat::bits_per_weight(int64_t in_features) const {
  if (!quantized()) return static_cast<double>(weight_bits);
  if (weight == WeightType::kGgml) {
    const ggml::TypeInfo& t = ggml::type_info(static_cast<ggml::Type>(ggml_type));
    return 8.0 * static_cast<double>(t.block_bytes) / static_cast<double>(t.block);
  }
  const double per_group_bits =
      static_cast<double>(c10::elementSize(scale_dtype) * 8) + (asymmetric ? 8.0 : 0.0);
  return weight_bits + per_group_bits / static_cast<double>(group_for(in_features));
}

const QuantFormat& find_format(std::string_view name) {
  for (const QuantFormat& f : formats()) {
    if (name == f.name) return f;
  }
  JNAS_CHECK_CONFIG(false, "unknown precision format '{}' (known: {})", name, format_names());
  throw;  // unreachable
}

std::string format_names() {
  std::string s;
  for (const QuantFormat& f : formats()) {
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return s;
}

}  // namespace jointnas::quant
