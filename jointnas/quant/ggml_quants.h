// ggml's block formats (f16, q8_0, q4_0, q4_K, q5_K, q6_K) as llama.cpp stores them in GGUF, and
// the activation quantizers (q8_0, q8_K) that its CPU matmuls apply to the input of a quantized
// weight. Written from ggml-quants.c (llama.cpp as vendored by llama-cpp-python 0.3.36): the
// *_ref quantizers, make_qx_quants / make_qkx2_quants, fp16 rounding of scales, and the AVX2
// quantize_row_q8_0 of ggml-cpu. Plain C++ on float rows (no LibTorch), so the fake quant, the
// GGUF writer and the bitwise test against libggml share one definition. docs/formats.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace jointnas::quant::ggml {

// Values are ggml's `enum ggml_type` (ggml.h): they go into GGUF tensor infos as they are.
enum class Type : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
};

struct TypeInfo {
  Type type;
  const char* name;     // ggml's name ("q4_K")
  int64_t block;        // values per block
  int64_t block_bytes;  // bytes per block
  Type vec_dot_type;    // what ggml-cpu quantizes the activations to (type_traits_cpu)
};

// The table of the types above; throws std::invalid_argument for another value.
const TypeInfo& type_info(Type t);
// Bytes of one row of n values (n a multiple of the block).
int64_t row_bytes(Type t, int64_t n);

// fp32 <-> fp16 bits exactly as ggml (round to nearest even, subnormals kept).
uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);

// One row: x[n] -> blocks (row_bytes(t, n) bytes), ggml's reference quantizer for `t` (the one
// llama-quantize and convert_hf_to_gguf use without an importance matrix). n % block == 0.
void quantize_row(Type t, std::span<const float> x, std::span<uint8_t> out);
// Blocks -> y[n] (dequantize_row_*).
void dequantize_row(Type t, std::span<const uint8_t> blocks, std::span<float> y);

// The activation row as ggml-cpu's matmul sees it for a weight of type `weight` (x -> the weight
// type's vec_dot_type -> its values): q8_0 as the AVX2 quantize_row_q8_0 computes it (scale
// 127 / amax, round half to even, fp16 block scale), q8_K as quantize_row_q8_K_ref (fp32 scale),
// f16 rounding for f16 weights, identity for f32. In place on x (n % 256 == 0 for q8_K).
void fake_quant_activation_row(Type weight, std::span<float> x);

}  // namespace jointnas::quant::ggml
