// config.json parsing and validation (both the transformers 4 and 5 layouts).
#include "jointnas/model/config.h"

#include <set>

#include <cmath>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

namespace jointnas::model {
namespace {

int64_t require_int(const Json& j, const char* key, const std::string& src) {
  auto v = get_int(j, key, src);
  if (!v) throw IoError(fmt::format("{}: missing required field '{}'", src, key));
  return *v;
}

RopeParameters parse_rope(const Json& j, const std::string& src) {
  RopeParameters r;
  // transformers 5: one block holds theta and scaling; older files: top-level rope_theta plus an
  // optional rope_scaling dict (`rope_type`, or the legacy `type`).
  const Json* block = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    block = &j["rope_parameters"];
  } else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    block = &j["rope_scaling"];
  } else if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    throw IoError(fmt::format("{}: 'rope_scaling' must be an object or null", src));
  }
  if (auto t = get_number(j, "rope_theta", src)) r.rope_theta = *t;
  if (block != nullptr) {
    const std::string bsrc = src + " (rope parameters)";
    if (auto t = get_number(*block, "rope_theta", bsrc)) r.rope_theta = *t;
    if (auto t = get_string(*block, "rope_type", bsrc)) {
      r.rope_type = *t;
    } else if (auto t2 = get_string(*block, "type", bsrc)) {
      r.rope_type = *t2;
    }
    if (auto v = get_number(*block, "factor", bsrc)) r.factor = *v;
    if (auto v = get_number(*block, "low_freq_factor", bsrc)) r.low_freq_factor = *v;
    if (auto v = get_number(*block, "high_freq_factor", bsrc)) r.high_freq_factor = *v;
    if (auto v = get_int(*block, "original_max_position_embeddings", bsrc)) {
      r.original_max_position_embeddings = *v;
    }
  }
  if (r.rope_type != "default" && r.rope_type != "llama3") {
    throw IoError(fmt::format("{}: unsupported rope type '{}'", src, r.rope_type),
                  "jointnas supports rope_type 'default' and 'llama3'");
  }
  if (!(r.rope_theta > 1.0) || !std::isfinite(r.rope_theta)) {
    throw IoError(fmt::format("{}: rope_theta must be a finite number > 1, got {}", src, r.rope_theta));
  }
  if (r.rope_type == "llama3") {
    if (!(r.factor >= 1.0) || !(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor) ||
        r.original_max_position_embeddings <= 0 || !std::isfinite(r.factor) ||
        !std::isfinite(r.high_freq_factor)) {
      throw IoError(fmt::format("{}: invalid llama3 rope scaling (factor {}, low {}, high {}, "
                                "original_max_position_embeddings {})",
                                src, r.factor, r.low_freq_factor, r.high_freq_factor,
                                r.original_max_position_embeddings));
    }
  }
  return r;
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_IO(j.is_object(), "{}: expected a JSON object at the top level", src);
  if (auto mt = get_string(j, "model_type", src)) {
    if (*mt != "llama" && *mt != "mistral" && *mt != "qwen2_no_bias") {
      throw IoError(fmt::format("{}: model_type '{}' is not a Llama-family model", src, *mt),
                    "jointnas loads LlamaForCausalLM checkpoints (model_type \"llama\")");
    }
  }
  LlamaConfig c;
  c.vocab_size = require_int(j, "vocab_size", src);
  c.hidden_size = require_int(j, "hidden_size", src);
  c.intermediate_size = require_int(j, "intermediate_size", src);
  c.num_hidden_layers = require_int(j, "num_hidden_layers", src);
  c.num_attention_heads = require_int(j, "num_attention_heads", src);
  c.num_key_value_heads =
      get_int(j, "num_key_value_heads", src).value_or(c.num_attention_heads);
  if (auto hd = get_int(j, "head_dim", src)) {
    c.head_dim = *hd;
  } else {
    JNAS_CHECK_IO(c.num_attention_heads > 0, "{}: num_attention_heads must be positive, got {}",
                  src, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
    JNAS_LOG_DEBUG("{}: no head_dim, using hidden_size / num_attention_heads = {}", src, c.head_dim);
  }
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src).value_or(2048);
  c.rms_norm_eps = get_number(j, "rms_norm_eps", src).value_or(1e-5);
  c.rope = parse_rope(j, src);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src).value_or(false);
  c.attention_bias = get_bool(j, "attention_bias", src).value_or(false);
  c.mlp_bias = get_bool(j, "mlp_bias", src).value_or(false);
  c.hidden_act = get_string(j, "hidden_act", src).value_or("silu");
  if (auto d = get_string(j, "dtype", src)) {
    c.torch_dtype = *d;
  } else if (auto d2 = get_string(j, "torch_dtype", src)) {
    c.torch_dtype = *d2;
  }
  c.bos_token_id = get_int(j, "bos_token_id", src).value_or(-1);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    for (const auto& e : j["eos_token_id"]) {
      JNAS_CHECK_IO(e.is_number_integer(), "{}: eos_token_id list must hold integers", src);
      c.eos_token_ids.push_back(e.get<int64_t>());
    }
  } else if (auto e = get_int(j, "eos_token_id", src)) {
    c.eos_token_ids.push_back(*e);
  }
  if (j.contains("jointnas_layer_specs")) {
    const Json& ls = j["jointnas_layer_specs"];
    JNAS_CHECK_IO(ls.is_array() && static_cast<int64_t>(ls.size()) == c.num_hidden_layers,
                  "{}: 'jointnas_layer_specs' must be a list of num_hidden_layers = {} objects",
                  src, c.num_hidden_layers);
    for (const Json& e : ls) c.layer_specs.push_back(LayerSpec::from_json(e, src));
  }
  c.validate(src);
  return c;
}

LlamaConfig LlamaConfig::from_file(const std::string& path) {
  return from_json(read_json_file(path), path);
}

void LlamaConfig::validate(const std::string& src) const {
  // Upper bounds keep a hostile config from asking for absurd allocations before any tensor is
  // read (2^24 per dimension is far above every released Llama).
  constexpr int64_t kMaxDim = int64_t(1) << 24;
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0 || v > kMaxDim) {
      throw IoError(fmt::format("{}: '{}' must be in [1, {}], got {}", src, name, kMaxDim, v));
    }
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  // Layers get a tighter bound: every loader builds one LayerSpec (and later one block) per layer,
  // so 2^24 layers asked for 3.4 GB and 10 s before any tensor was read (measured through
  // fuzz/fuzz_config). The deepest released Llama (3.1-405B) has 126 layers.
  constexpr int64_t kMaxLayers = 4096;
  if (num_hidden_layers > kMaxLayers) {
    throw IoError(fmt::format("{}: 'num_hidden_layers' must be in [1, {}], got {}", src, kMaxLayers,
                              num_hidden_layers));
  }
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  JNAS_CHECK_IO(num_attention_heads % num_key_value_heads == 0,
                "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", src,
                num_attention_heads, num_key_value_heads);
  JNAS_CHECK_IO(head_dim % 2 == 0, "{}: head_dim must be even for RoPE, got {}", src, head_dim);
  JNAS_CHECK_IO(rms_norm_eps > 0 && std::isfinite(rms_norm_eps), "{}: rms_norm_eps must be > 0",
                src);
  if (hidden_act != "silu") {
    throw IoError(fmt::format("{}: hidden_act '{}' is not supported", src, hidden_act),
                  "Llama models use 'silu' (SwiGLU)");
  }
  if (attention_bias || mlp_bias) {
    throw IoError(fmt::format("{}: attention_bias / mlp_bias are not supported", src));
  }
  for (int64_t e : eos_token_ids) {
    JNAS_CHECK_IO(e >= 0 && e < vocab_size, "{}: eos_token_id {} outside the vocabulary [0, {})",
                  src, e, vocab_size);
  }
  JNAS_CHECK_IO(bos_token_id < vocab_size, "{}: bos_token_id {} outside the vocabulary", src,
                bos_token_id);
}

Json LlamaConfig::to_json() const {
  Json rp{{"rope_theta", rope.rope_theta}, {"rope_type", rope.rope_type}};
  if (rope.rope_type == "llama3") {
    rp.update(Json{{"factor", rope.factor},
                   {"low_freq_factor", rope.low_freq_factor},
                   {"high_freq_factor", rope.high_freq_factor},
                   {"original_max_position_embeddings", rope.original_max_position_embeddings}});
  }
  // The keys transformers 5 writes (a JSON object's keys are sorted when it is written).
  Json j{{"architectures", Json::array({"LlamaForCausalLM"})}, {"model_type", "llama"},
         {"vocab_size", vocab_size}, {"hidden_size", hidden_size}, {"intermediate_size", intermediate_size},
         {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
         {"num_key_value_heads", num_key_value_heads}, {"head_dim", head_dim},
         {"max_position_embeddings", max_position_embeddings}, {"rms_norm_eps", rms_norm_eps},
         {"rope_parameters", rp}, {"tie_word_embeddings", tie_word_embeddings}, {"attention_bias", false},
         {"mlp_bias", false}, {"hidden_act", hidden_act}, {"dtype", torch_dtype}};
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (!eos_token_ids.empty()) {
    j["eos_token_id"] = eos_token_ids;
  }
  if (!layer_specs.empty()) {
    Json ls = Json::array();
    std::set<std::string> used;
    for (const LayerSpec& s : layer_specs) {
      ls.push_back(s.to_json());
      for (const std::string* f : {&s.format_qkv, &s.format_o, &s.format_gate_up, &s.format_down}) {
        used.insert(*f);
      }
    }
    j["jointnas_layer_specs"] = ls;
    // Marks the checkpoint as ours for other tools (which will refuse it rather than misread
    // packed tensors); the formats are described in docs/formats.md.
    j["quantization_config"] = Json{{"quant_method", "jointnas"},
                                    {"format_version", 1},
                                    {"formats", std::vector<std::string>(used.begin(), used.end())}};
  }
  return j;
}

Json LayerSpec::to_json() const {
  Json j{{"num_attention_heads", num_attention_heads},
              {"num_key_value_heads", num_key_value_heads},
              {"head_dim", head_dim},
              {"intermediate_size", intermediate_size},
              {"rope_theta", rope_theta},
              {"skip", skip},
              {"format_qkv", format_qkv},
              {"format_o", format_o},
              {"format_gate_up", format_gate_up},
              {"format_down", format_down}};
  if (attention_scale != 0.0) j["attention_scale"] = attention_scale;
  return j;
}

LayerSpec LayerSpec::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_IO(j.is_object(), "{}: a layer spec must be an object", src);
  LayerSpec s;
  auto req = [&](const char* k) { return require_int(j, k, src); };
  s.num_attention_heads = req("num_attention_heads");
  s.num_key_value_heads = req("num_key_value_heads");
  s.head_dim = req("head_dim");
  s.intermediate_size = req("intermediate_size");
  s.rope_theta = get_number(j, "rope_theta", src).value_or(10000.0);
  s.skip = get_bool(j, "skip", src).value_or(false);
  s.attention_scale = get_number(j, "attention_scale", src).value_or(0.0);
  JNAS_CHECK_IO(std::isfinite(s.attention_scale) && s.attention_scale >= 0.0,
                "{}: attention_scale must be a finite number >= 0 (0: 1 / sqrt(head_dim)), got {}",
                src, s.attention_scale);
  s.format_qkv = get_string(j, "format_qkv", src).value_or("bf16");
  s.format_o = get_string(j, "format_o", src).value_or("bf16");
  s.format_gate_up = get_string(j, "format_gate_up", src).value_or("bf16");
  s.format_down = get_string(j, "format_down", src).value_or("bf16");
  return s;
}

const char* slot_name(LinearSlot s) {
  static constexpr std::array<const char*, kNumSlots> kNames = {"qkv", "o", "gate_up", "down"};
  return kNames[slot_index(s)];
}

const std::string& LayerSpec::format_of(int slot) const {
  switch (slot) {
    case 0: return format_qkv;
    case 1: return format_o;
    case 2: return format_gate_up;
    default: return format_down;
  }
}

std::string& LayerSpec::format_of(int slot) {
  return const_cast<std::string&>(static_cast<const LayerSpec*>(this)->format_of(slot));
}

std::vector<LayerSpec> dense_layer_specs(const LlamaConfig& c) {
  if (!c.layer_specs.empty()) return c.layer_specs;
  LayerSpec s;
  s.num_attention_heads = c.num_attention_heads;
  s.num_key_value_heads = c.num_key_value_heads;
  s.head_dim = c.head_dim;
  s.intermediate_size = c.intermediate_size;
  s.rope_theta = c.rope.rope_theta;
  return std::vector<LayerSpec>(static_cast<size_t>(c.num_hidden_layers), s);
}

}  // namespace jointnas::model
