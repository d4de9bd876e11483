// Seeded tiny Llama checkpoint.
#include "tiny_llama.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

namespace jointnas::testing {

model::Checkpoint tiny_llama_checkpoint(uint64_t seed, bool tied) {
  model::LlamaConfig c;
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = tied;
  c.torch_dtype = "float32";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return random_llama_checkpoint(c, seed, 0.1, 0.1);
}

model::Checkpoint random_llama_checkpoint(const model::LlamaConfig& c, uint64_t seed,
                                          double matrix_std, double embed_std) {
  model::Checkpoint ck;
  ck.format = "hf";
  ck.config_source = "<random llama>";
  ck.config = c;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto mat = [&](int64_t r, int64_t k) { return at::normal(0.0, matrix_std, {r, k}, gen); };
  auto norm = [&](int64_t n) { return 1.0 + at::normal(0.0, 0.1, {n}, gen); };
  auto put = [&](const std::string& n, at::Tensor t) {
    ck.tensors[n] = std::move(t);
    ck.tensor_source[n] = ck.config_source;
  };
  const int64_t H = c.hidden_size, hd = c.head_dim;
  put("model.embed_tokens.weight", at::normal(0.0, embed_std, {c.vocab_size, H}, gen));
  put("model.norm.weight", norm(H));
  if (!c.tie_word_embeddings) put("lm_head.weight", mat(c.vocab_size, H));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    put(p + "input_layernorm.weight", norm(H));
    put(p + "post_attention_layernorm.weight", norm(H));
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

}  // namespace jointnas::testing
