// llama2.c binary checkpoint reader. Layouts (all fp32, row-major [out, in] like nn.Linear):
//  legacy: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative => separate
//    classifier), seq_len; then embed, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L],
//    w2[L], w3[L], rms_final, freq_cis_real, freq_cis_imag (seq_len * head_size / 2 each), [wcls].
//  v1: u32 magic 0x616b3432 "ak42", i32 version 1, the 7 int32 params, u8 shared_classifier, zero
//    padding to 256 bytes; then rms_att[L], rms_ffn[L], rms_final, embed, wq[L], wk[L], wv[L],
//    wo[L], w1[L], w2[L], w3[L], [wcls].
#include "jointnas/model/llama2c.h"

#include <ATen/ATen.h>

#include <cstring>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas::model {
namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;

// Sequential reader over the mapped file; every read is bounds-checked.
class Cursor {
 public:
  Cursor(std::shared_ptr<MappedFile> f, size_t offset) : f_(std::move(f)), off_(offset) {}
  // Next n floats as a [rows, cols] (or [n]) tensor viewing the mapping.
  at::Tensor take(std::vector<int64_t> shape, const char* what) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const size_t bytes = static_cast<size_t>(n) * 4;
    if (off_ > f_->size() || bytes > f_->size() - off_) {
      throw IoError(fmt::format("{}: truncated llama2.c checkpoint: {} needs {} bytes at offset {}, "
                                "file has {}",
                                f_->path(), what, bytes, off_, f_->size()),
                    "the header's sizes do not match the file; is it a complete llama2.c export?");
    }
    auto keep = f_;
    at::Tensor t = at::from_blob(const_cast<uint8_t*>(f_->data() + off_), shape,
                                 [keep](void*) mutable { keep.reset(); }, at::kFloat);
    off_ += bytes;
    return t;
  }
  void skip_floats(int64_t n, const char* what) { (void)take({n}, what); }
  size_t offset() const { return off_; }

 private:
  std::shared_ptr<MappedFile> f_;
  size_t off_;
};

}  // namespace

at::Tensor permute_rotary_rows(const at::Tensor& w, int64_t n_heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.reshape({n_heads, rows / n_heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
}

Checkpoint load_llama2c(const std::string& path) {
  auto f = MappedFile::open(path);
  JNAS_CHECK_IO(f->size() >= 28, "{}: too short for a llama2.c header ({} bytes)", path, f->size());
  uint32_t magic = 0;
  std::memcpy(&magic, f->data(), 4);
  const bool v1 = magic == kMagicV1;
  int32_t p[7];
  bool shared = true;
  size_t offset = 0;
  if (v1) {
    JNAS_CHECK_IO(f->size() >= 256, "{}: truncated llama2.c v1 header", path);
    int32_t version = 0;
    std::memcpy(&version, f->data() + 4, 4);
    JNAS_CHECK_IO(version == 1, "{}: llama2.c format version {} is not supported (only the fp32 "
                  "legacy and version 1 formats are)", path, version);
    std::memcpy(p, f->data() + 8, sizeof(p));
    shared = f->data()[36] != 0;
    offset = 256;
  } else {
    std::memcpy(p, f->data(), sizeof(p));
    shared = p[5] > 0;
    p[5] = std::abs(p[5]);
    offset = 28;
  }
  const int64_t dim = p[0], hidden = p[1], n_layers = p[2], n_heads = p[3], n_kv = p[4],
                vocab = p[5], seq_len = p[6];
  // Sanity limits before any size arithmetic: llama2.c models are small.
  constexpr int64_t kMax = 1 << 20;
  for (int i = 0; i < 7; ++i) {
    JNAS_CHECK_IO(p[i] > 0 && p[i] <= kMax,
                  "{}: not a llama2.c checkpoint: header field {} = {} (expected 1..{})", path, i,
                  p[i], kMax);
  }
  JNAS_CHECK_IO(dim % n_heads == 0 && n_heads % n_kv == 0 && (dim / n_heads) % 2 == 0,
                "{}: inconsistent llama2.c header: dim {} heads {} kv heads {}", path, dim, n_heads,
                n_kv);
  const int64_t hd = dim / n_heads, kv_dim = n_kv * hd;
  // Expected size check up front gives one clear message for a truncated file.
  const int64_t per_layer = 2 * dim + dim * dim * 2 + dim * kv_dim * 2 + 3 * dim * hidden;
  int64_t floats = vocab * dim + n_layers * per_layer + dim + (shared ? 0 : vocab * dim);
  if (!v1) floats += seq_len * hd;  // freq_cis real + imag
  const size_t need = offset + static_cast<size_t>(floats) * 4;
  JNAS_CHECK_IO(f->size() >= need,
                "{}: truncated llama2.c checkpoint: header implies {} bytes, file has {}", path,
                need, f->size());

  Checkpoint ck;
  ck.format = "llama2c";
  ck.config_source = path;
  LlamaConfig& c = ck.config;
  c.vocab_size = vocab;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_hidden_layers = n_layers;
  c.num_attention_heads = n_heads;
  c.num_key_value_heads = n_kv;
  c.head_dim = hd;
  c.max_position_embeddings = seq_len;
  c.rms_norm_eps = 1e-5;  // llama2.c run.c hard-codes 1e-5
  c.rope.rope_theta = 10000.0;
  c.tie_word_embeddings = shared;
  c.torch_dtype = "float32";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate(path);

  Cursor cur(f, offset);
  auto layers = [&](const char* what, std::vector<int64_t> shape) {
    std::vector<at::Tensor> v;
    for (int64_t l = 0; l < n_layers; ++l) v.push_back(cur.take(shape, what));
    return v;
  };
  std::vector<at::Tensor> rms_att, rms_ffn, wq, wk, wv, wo, w1, w2, w3;
  at::Tensor embed, rms_final;
  if (v1) {
    rms_att = layers("rms_att", {dim});
    rms_ffn = layers("rms_ffn", {dim});
    rms_final = cur.take({dim}, "rms_final");
    embed = cur.take({vocab, dim}, "token_embedding");
  } else {
    embed = cur.take({vocab, dim}, "token_embedding");
    rms_att = layers("rms_att", {dim});
  }
  wq = layers("wq", {dim, dim});
  wk = layers("wk", {kv_dim, dim});
  wv = layers("wv", {kv_dim, dim});
  wo = layers("wo", {dim, dim});
  if (!v1) rms_ffn = layers("rms_ffn", {dim});
  w1 = layers("w1", {hidden, dim});
  w2 = layers("w2", {dim, hidden});
  w3 = layers("w3", {hidden, dim});
  if (!v1) {
    rms_final = cur.take({dim}, "rms_final");
    cur.skip_floats(seq_len * hd / 2, "freq_cis_real");
    cur.skip_floats(seq_len * hd / 2, "freq_cis_imag");
  }
  at::Tensor wcls = shared ? at::Tensor() : cur.take({vocab, dim}, "classifier");

  auto put = [&](const std::string& name, const at::Tensor& t) {
    ck.tensors[name] = t;
    ck.tensor_source[name] = path;
  };
  put("model.embed_tokens.weight", embed);
  put("model.norm.weight", rms_final);
  if (!shared) put("lm_head.weight", wcls);
  for (int64_t l = 0; l < n_layers; ++l) {
    const std::string pre = fmt::format("model.layers.{}.", l);
    put(pre + "input_layernorm.weight", rms_att[l]);
    put(pre + "post_attention_layernorm.weight", rms_ffn[l]);
    put(pre + "self_attn.q_proj.weight", permute_rotary_rows(wq[l], n_heads));
    put(pre + "self_attn.k_proj.weight", permute_rotary_rows(wk[l], n_kv));
    put(pre + "self_attn.v_proj.weight", wv[l]);
    put(pre + "self_attn.o_proj.weight", wo[l]);
    put(pre + "mlp.gate_proj.weight", w1[l]);
    put(pre + "mlp.down_proj.weight", w2[l]);
    put(pre + "mlp.up_proj.weight", w3[l]);
  }
  return ck;
}

}  // namespace jointnas::model
