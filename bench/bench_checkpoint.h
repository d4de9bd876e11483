// A random Llama checkpoint generated on the GPU (the benchmarks' stand-in for real weights).
#pragma once

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "jointnas/model/checkpoint.h"

namespace jointnas::bench {

namespace jm = jointnas::model;

// Random N(0, 0.02) weights generated on the GPU in bf16 (an 8B model never passes through host RAM).
inline jm::Checkpoint random_gpu_checkpoint(const jm::LlamaConfig& c) {
  jm::Checkpoint ck;
  ck.config = c;
  ck.config_source = "<random 8B>";
  auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto mat = [&](int64_t r, int64_t k) { return at::randn({r, k}, o) * 0.02; };
  const int64_t H = c.hidden_size, hd = c.head_dim;
  auto put = [&](const std::string& n, at::Tensor t) { ck.tensors[n] = t; ck.tensor_source[n] = ck.config_source; };
  put("model.embed_tokens.weight", mat(c.vocab_size, H));
  put("model.norm.weight", at::ones({H}, o));
  if (!c.tie_word_embeddings) put("lm_head.weight", mat(c.vocab_size, H));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    put(p + "input_layernorm.weight", at::ones({H}, o));
    put(p + "post_attention_layernorm.weight", at::ones({H}, o));
    put(p + "self_attn.q_proj.weight", mat(c.num_attention_heads * hd, H));
    put(p + "self_attn.k_proj.weight", mat(c.num_key_value_heads * hd, H));
    put(p + "self_attn.v_proj.weight", mat(c.num_key_value_heads * hd, H));
    put(p + "self_attn.o_proj.weight", mat(H, c.num_attention_heads * hd));
    put(p + "mlp.gate_proj.weight", mat(c.intermediate_size, H));
    put(p + "mlp.up_proj.weight", mat(c.intermediate_size, H));
    put(p + "mlp.down_proj.weight", mat(H, c.intermediate_size));
  }
  return ck;
}


}  // namespace jointnas::bench
