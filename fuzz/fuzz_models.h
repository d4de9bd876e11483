// Model configs the YAML / arch.json / latency-table targets parse against: the shapes of the
// three models the project ships configs for (stories260K, ref-17m, Llama-3.1-8B), built in code
// so that a target depends on no file outside its input.
#pragma once

#include "jointnas/model/config.h"

namespace jointnas::fuzz {

inline model::LlamaConfig make_config(int64_t vocab, int64_t hidden, int64_t inter, int64_t layers,
                                      int64_t heads, int64_t kv_heads, int64_t head_dim) {
  model::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = head_dim;
  c.validate("fuzz model");
  return c;
}

// models/stories260K (hidden 64, MLP 172, 8 heads / 4 KV heads of 8, 5 layers).
inline const model::LlamaConfig& stories260k() {
  static const model::LlamaConfig c = make_config(512, 64, 172, 5, 8, 4, 8);
  return c;
}
// ref-17m (shared/models/ref-17m/config.json).
inline const model::LlamaConfig& ref17m() {
  static const model::LlamaConfig c = make_config(8192, 384, 1152, 8, 6, 2, 64);
  return c;
}
// Llama-3.1-8B's widths (configs/llama-3.1-8b.json) with 4 of its 32 layers, as in
// tests/search/space_test.cpp: the choices are per layer, so more layers add allocations (and ASan
// time: 32 layers made fuzz_space_yaml run at ~100 inputs/s) but no new code paths.
inline const model::LlamaConfig& llama31_8b() {
  static const model::LlamaConfig c = make_config(128256, 4096, 14336, 4, 32, 8, 128);
  return c;
}

}  // namespace jointnas::fuzz
