// The QuantFormat registry: one table row per precision format the search may choose. Rows are
// data (weight type, bits, symmetry, group policy, scale dtype, activation type); every function
// in quant/ is generic over a row, so adding a row (w4a8, ...) touches no caller. Names are
// self-describing. docs/formats.md explains each row and the group rule.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <c10/core/ScalarType.h>

namespace jointnas::quant {

enum class WeightType : uint8_t {
  kNone,      // unquantized: the model's compute dtype
  kInt,       // integers with per-group (or per-row) scales, optional integer zero point
  kFp8E4M3,   // float8 e4m3fn values with per-row fp32 scales
  kGgml,      // one of ggml's block formats (quant/ggml_quants.h), stored as ggml's blocks
};

enum class ActType : uint8_t {
  kNone,              // activations stay in the compute dtype (weight-only formats)
  kInt8PerToken,      // dynamic symmetric int8, one fp32 scale per token (row of x)
  kFp8E4M3PerToken,   // dynamic e4m3, one fp32 scale per token
  kGgml,              // as ggml-cpu's matmul: the weight type's vec_dot_type (q8_0, q8_K, f16)
};

struct QuantFormat {
  const char* name;
  const char* summary;
  WeightType weight;
  int weight_bits;         // 16 for kNone
  bool asymmetric;         // integer zero point per group (kInt only)
  // Preferred input channels per weight scale; 0 = one scale per output channel (whole row).
  int64_t group;
  c10::ScalarType scale_dtype;  // how scales are stored (and what the kernels read)
  ActType act;
  // Whether the CPU path is a real kernel rather than an emulation of the GPU one: fp8 on the CPU
  // runs `_scaled_mm` in fp32 after a cast, 20x to 40x slower than bf16 (docs/formats.md). Search
  // spaces leave such formats out on that device unless a space names them.
  bool fast_on_cpu = true;
  // kGgml: ggml's `enum ggml_type` value (quant::ggml::Type); its block size and bytes come from
  // ggml_quants' table. -1 for jointnas's own formats.
  int ggml_type = -1;
  // For jointnas's own formats: the ggml type a GGUF export converts them to (the nearest one
  // llama.cpp runs); empty when there is none. docs/export.md.
  const char* gguf_nearest = "";

  bool quantized() const { return weight != WeightType::kNone; }
  bool weight_only() const { return quantized() && act == ActType::kNone; }
  // Integer range of the stored weight values: [0, 2^b - 1] asymmetric, [-(2^(b-1) - 1),
  // 2^(b-1) - 1] symmetric (the symmetric range drops -2^(b-1) so that -q is representable).
  int qmin() const;
  int qmax() const;
  // Group rule (documented in docs/formats.md): a grouped format uses its preferred group when
  // it divides `in_features`; else the largest of 64 and 32 that divides it (so stories260K's
  // hidden size 64 gets group 64); else one group per row (per-channel, e.g. K = 172). Per-row
  // formats and unquantized ones return `in_features`.
  int64_t group_for(int64_t in_features) const;
  // Whether `group` is a legal group for `in_features` columns: group_for(in_features), or a
  // grouped format's smaller group of 64 or 32 that divides in_features (a group must not cross a
  // boundary of the matrix, such as a head in o_proj; the kernels take any multiple of 32).
  bool allows_group(int64_t in_features, int64_t group) const;
  // Storage bits per weight for a matrix with `in_features` columns, counting scales and zero
  // points: computed from the row, never typed.
  double bits_per_weight(int64_t in_features) const;
  // Storage bytes of an [n, k] weight (data, scales, zero points; ggml: whole blocks).
  int64_t weight_bytes(int64_t n, int64_t k) const;
  // ggml formats: values per block (a row's length must be a multiple); 1 for other formats.
  int64_t block() const;
};

// The table, in a fixed order (bf16 first).
const std::vector<QuantFormat>& formats();
// The row named `name`; throws ConfigError listing the known names.
const QuantFormat& find_format(std::string_view name);
// "bf16, w8a16, ..." for messages and --help.
std::string format_names();

// Range of an e4m3fn value (the largest finite magnitude).
inline constexpr float kFp8E4M3Max = 448.0f;

}  // namespace jointnas::quant
