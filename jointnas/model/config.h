// LlamaConfig: the Hugging Face config.json of a Llama-family model, field names kept as HF
// writes them, plus LayerSpec, the per-layer blueprint that lets one runtime run heterogeneous
// (pruned, mixed-precision) models.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::model {

// RoPE parameters. HF writes them either top-level (`rope_theta`, `rope_scaling`, transformers
// 4.x and real Llama-3.1 checkpoints) or as one `rope_parameters` block (transformers 5).
struct RopeParameters {
  double rope_theta = 10000.0;
  std::string rope_type = "default";  // "default" or "llama3"
  // llama3 scaling (Llama-3.1 config: factor 8, low 1, high 4, original 8192).
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LayerSpec;

// The four fused linears of a block, in this order everywhere: LayerSpec formats, the runtime's
// weights, the search's format decisions, the cost model and the exports.
enum class LinearSlot : uint8_t { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3 };
inline constexpr int kNumSlots = 4;
inline constexpr std::array<LinearSlot, kNumSlots> kSlots = {LinearSlot::kQkv, LinearSlot::kO, LinearSlot::kGateUp,
                                                             LinearSlot::kDown};
// "qkv", "o", "gate_up", "down": the slot's name in arch.json, search spaces and logs.
const char* slot_name(LinearSlot s);
inline constexpr size_t slot_index(LinearSlot s) { return static_cast<size_t>(s); }
// One value per slot, indexed by the slot.
template <class T>
struct PerSlot : std::array<T, kNumSlots> {
  using std::array<T, kNumSlots>::operator[];
  T& operator[](LinearSlot s) { return (*this)[slot_index(s)]; }
  const T& operator[](LinearSlot s) const { return (*this)[slot_index(s)]; }
};

struct LlamaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // explicit in config.json, else hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  RopeParameters rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  std::string torch_dtype = "float32";  // `dtype` (v5) or `torch_dtype` (v4) as written
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;  // config.json allows an int or a list
  // Per-layer shapes and precision formats of a pruned / quantized model ("jointnas_layer_specs"
  // in config.json, written by `jointnas quantize` and the exporter); empty for a plain model.
  std::vector<LayerSpec> layer_specs;

  // Parses config.json text; `source` names the file in errors. Unknown keys are ignored (HF
  // configs carry many); unsupported values (model_type, activation, biases) are IoErrors.
  static LlamaConfig from_json(const Json& j, const std::string& source);
  static LlamaConfig from_file(const std::string& path);
  // HF config.json (transformers 5 layout: `rope_parameters`).
  Json to_json() const;
  // Checks internal consistency; throws IoError naming `source`.
  void validate(const std::string& source) const;
};

// Per-layer shapes and precision. A dense model is the trivial list (every layer as in the
// config); search results are lists that differ per layer. Formats are QuantFormat names
// (docs/formats.md); "bf16" means unquantized in the model's compute dtype.
struct LayerSpec {
  int64_t num_attention_heads = 0;  // query heads (a multiple of the KV heads: whole GQA groups)
  int64_t num_key_value_heads = 0;  // KV heads, one per kept group
  int64_t head_dim = 0;             // even; <= the model's (a prefix of its rotary pairs)
  int64_t intermediate_size = 0;    // MLP width (0 never: a dropped block is `skip`)
  // RoPE base of this layer. A head size reduced to 2k of d rotary dims keeps the first k pairs,
  // which is an ordinary RoPE with theta' = theta^(2k/d) (docs/method: head size under RoPE).
  double rope_theta = 10000.0;
  bool skip = false;  // a dropped block: exactly the identity
  // Softmax scale of the attention scores; 0 means the usual 1 / sqrt(head_dim). A head size cut
  // from d to 2k keeps the original 1 / sqrt(d) here, so that the sub-network computes exactly
  // what the supernet did (docs/search.md); exporters fold it into q_proj where the format allows.
  double attention_scale = 0.0;
  std::string format_qkv = "bf16";
  std::string format_o = "bf16";
  std::string format_gate_up = "bf16";
  std::string format_down = "bf16";
  // The format of linear slot 0..3 (qkv, o, gate_up, down; model::LinearSlot).
  const std::string& format_of(int slot) const;
  std::string& format_of(int slot);

  Json to_json() const;
  static LayerSpec from_json(const Json& j, const std::string& source);
};

// The config's own layer_specs when it has them, else every layer as the config says, in bf16.
std::vector<LayerSpec> dense_layer_specs(const LlamaConfig& config);

}  // namespace jointnas::model
