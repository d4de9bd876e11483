// The registry table. See format.h for what each column means and docs/formats.md for the why.
#include "jointnas/quant/format.h"

#include "jointnas/core/error.h"

namespace jointnas::quant {

const std::vector<QuantFormat>& formats() {
  // clang-format off
  static const std::vector<QuantFormat> table = {
    // name          summary                                                  weight               bits asym  group scale          activations
    {"bf16",       "unquantized, compute dtype",                             WeightType::kNone,    16, false,   0, c10::kBFloat16, ActType::kNone},
    {"w8a16",      "int8 weights, per-channel symmetric fp32 scales",        WeightType::kInt,      8, false,   0, c10::kFloat,    ActType::kNone},
    {"w4a16_g128", "int4 weights, asymmetric, groups of 128 along K, bf16 scales, uint8 zeros",
                                                                             WeightType::kInt,      4, true,  128, c10::kBFloat16, ActType::kNone},
    {"w8a8",       "int8 weights per channel x int8 activations per token, symmetric, dynamic",
                                                                             WeightType::kInt,      8, false,   0, c10::kFloat,    ActType::kInt8PerToken},
    {"fp8_e4m3",   "e4m3 weights per channel x e4m3 activations per token, dynamic (Hopper)",
                                                                             WeightType::kFp8E4M3,  8, false,   0, c10::kFloat,    ActType::kFp8E4M3PerToken, /*fast_on_cpu=*/false},
  };
  // clang-format on
  return table;
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
  if (!quantized() || group == 0 || in_features <= 0) return in_features;
  if (in_features % group == 0) return group;
  for (int64_t g : {int64_t{64}, int64_t{32}}) {
    if (g < group && in_features % g == 0) return g;
  }
  return in_features;
}

bool QuantFormat::allows_group(int64_t in_features, int64_t g) const {
  if (g == group_for(in_features)) return true;
  if (!quantized() || group == 0 || g <= 0 || in_features % g != 0) return false;
  return (g == 64 || g == 32) && g < group;
}

double QuantFormat::bits_per_weight(int64_t in_features) const {
  if (!quantized()) return static_cast<double>(weight_bits);
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
