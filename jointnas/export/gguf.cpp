// A found model as a GGUF file (see gguf.h). Tensor names, shapes and the Q/K row order are those
// of llama.cpp's convert_hf_to_gguf.py (LlamaModel / DeciModel); metadata keys those that
// src/llama-model.cpp and src/models/deci.cpp read (llama-cpp-python 0.3.36's vendored tree).
#include "jointnas/export/gguf.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/quant/ggml_quants.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::exporting {
namespace {

namespace g = quant::ggml;
using model::LayerSpec;
using model::LinearSlot;

g::Type ggml_type_named(const std::string& name) {
  for (g::Type t : {g::Type::kF32, g::Type::kF16, g::Type::kQ8_0, g::Type::kQ4_0, g::Type::kQ4_K,
                    g::Type::kQ5_K, g::Type::kQ6_K}) {
    std::string n = g::type_info(t).name;
    for (char& c : n) c = static_cast<char>(std::tolower(c));
    if (n == name) return t;
  }
  JNAS_CHECK_CONFIG(false, "unknown ggml type '{}' (f32, f16, q8_0, q4_0, q4_k, q5_k, q6_k)", name);
  throw;  // unreachable
}

std::string lower_name(g::Type t) {
  std::string n = g::type_info(t).name;
  for (char& c : n) c = static_cast<char>(std::tolower(c));
  return n;
}

// fp32 [N, K] -> ggml rows.
std::vector<uint8_t> quantize_rows(const at::Tensor& w, g::Type t) {
  const at::Tensor x = w.to(at::kFloat).contiguous();
  const int64_t N = x.size(0), K = x.size(1), rb = g::row_bytes(t, K);
  std::vector<uint8_t> out(static_cast<size_t>(N * rb));
  const float* p = x.data_ptr<float>();
  for (int64_t r = 0; r < N; ++r) {
    g::quantize_row(t, {p + r * K, static_cast<size_t>(K)},
                    {out.data() + r * rb, static_cast<size_t>(rb)});
  }
  return out;
}

at::Tensor dequantize_rows(const std::vector<uint8_t>& b, g::Type t, int64_t N, int64_t K) {
  at::Tensor y = at::empty({N, K}, at::kFloat);
  const int64_t rb = g::row_bytes(t, K);
  for (int64_t r = 0; r < N; ++r) {
    g::dequantize_row(t, {b.data() + r * rb, static_cast<size_t>(rb)},
                      {y.data_ptr<float>() + r * K, static_cast<size_t>(K)});
  }
  return y;
}

// One linear (a row range of a fused QuantLinear) on its way into the file: either ggml blocks
// (rows of `row_bytes`) that are moved without touching a value, or fp32 values to quantize.
struct Part {
  const quant::QuantFormat* format = nullptr;
  int64_t rows = 0, cols = 0;
  at::Tensor blocks;  // [rows, row bytes] uint8 (ggml formats)
  at::Tensor values;  // [rows, cols] fp32 (other formats: the runtime's dequantized weight)
};

Part slice_part(const quant::QuantLinear& lin, int64_t row0, int64_t rows) {
  const quant::PackedWeight& pw = lin.packed();
  Part p;
  p.format = pw.format;
  p.rows = rows;
  p.cols = pw.in_features;
  if (pw.format->weight == quant::WeightType::kGgml) {
    p.blocks = pw.data.narrow(0, row0, rows).contiguous();
  } else {
    p.values =
        quant::dequantize_ref(quant::unpack(pw), at::kFloat).narrow(0, row0, rows).contiguous();
  }
  return p;
}

// Row map of a head cut to hd of d dims into the padded head: the first hd/2 rotary pairs keep
// their places [0, hd/2) and [d/2, d/2 + hd/2) (rotate-half layout); V rows and o_proj columns
// take [0, hd). Returns, for each row of the cut head, its row in the padded head.
std::vector<int64_t> head_rows(int64_t hd, int64_t d, bool rotary) {
  std::vector<int64_t> m(static_cast<size_t>(hd));
  for (int64_t r = 0; r < hd; ++r) m[r] = !rotary || r < hd / 2 ? r : d / 2 + (r - hd / 2);
  return m;
}

// ggml's interleaved RoPE wants row 2j + t of a head where HF has row t * d/2 + j
// (convert_hf_to_gguf.py's LlamaModel.permute).
int64_t interleaved(int64_t r, int64_t d) { return (r % (d / 2)) * 2 + r / (d / 2); }

// Q / K / V rows: n_heads cut heads of hd -> n_heads * d rows (zero padded, Q / K permuted).
// Works on ggml blocks (whole rows: exact) and on fp32 values alike.
Part pad_rows(const Part& p, int64_t n_heads, int64_t hd, int64_t d, bool rotary) {
  const std::vector<int64_t> m = head_rows(hd, d, rotary);
  Part out = p;
  out.rows = n_heads * d;
  const at::Tensor& src = p.blocks.defined() ? p.blocks : p.values;
  at::Tensor dst;
  if (p.blocks.defined()) {
    const g::Type t = static_cast<g::Type>(p.format->ggml_type);
    const std::vector<uint8_t> zero_row = quantize_rows(at::zeros({1, p.cols}), t);
    dst = at::from_blob(const_cast<uint8_t*>(zero_row.data()),
                        {1, static_cast<int64_t>(zero_row.size())}, at::kByte)
              .repeat({out.rows, 1});
  } else {
    dst = at::zeros({out.rows, p.cols}, at::kFloat);
  }
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t r = 0; r < hd; ++r) {
      int64_t to = m[r];
      if (rotary) to = interleaved(to, d);
      dst[h * d + to].copy_(src[h * hd + r]);
    }
  }
  (p.blocks.defined() ? out.blocks : out.values) = dst;
  return out;
}

// o_proj columns: n_heads cut heads of hd -> n_heads * d columns. ggml blocks move whole when hd
// is a multiple of the block (exact); else the values are padded and quantized again (reported).
Part pad_columns(const Part& p, int64_t n_heads, int64_t hd, int64_t d, bool* requantized) {
  Part out = p;
  out.cols = n_heads * d;
  *requantized = false;
  if (hd == d) return out;
  if (p.blocks.defined()) {
    const g::Type t = static_cast<g::Type>(p.format->ggml_type);
    const int64_t blk = g::type_info(t).block, bb = g::type_info(t).block_bytes;
    if (hd % blk == 0) {
      const std::vector<uint8_t> zb = quantize_rows(at::zeros({1, blk}), t);
      at::Tensor zero = at::from_blob(const_cast<uint8_t*>(zb.data()), {1, bb}, at::kByte);
      at::Tensor dst = zero.repeat({p.rows, out.cols / blk});
      for (int64_t h = 0; h < n_heads; ++h) {
        dst.narrow(1, h * d / blk * bb, hd / blk * bb)
            .copy_(p.blocks.narrow(1, h * hd / blk * bb, hd / blk * bb));
      }
      out.blocks = dst;
      return out;
    }
    out.values =
        dequantize_rows(std::vector<uint8_t>(p.blocks.data_ptr<uint8_t>(),
                                             p.blocks.data_ptr<uint8_t>() + p.blocks.numel()),
                        t, p.rows, p.cols);
    out.blocks = at::Tensor();
    *requantized = true;
  }
  const at::Tensor src = out.values.defined() ? out.values : p.values;
  at::Tensor dst = at::zeros({p.rows, out.cols}, at::kFloat);
  for (int64_t h = 0; h < n_heads; ++h) dst.narrow(1, h * d, hd).copy_(src.narrow(1, h * hd, hd));
  out.values = dst;
  return out;
}

// The ggml type a layer's format is written as, or a ConfigError naming the layer and why not.
g::Type target_type(const quant::QuantFormat& f, int64_t K, const std::string& where) {
  g::Type t;
  if (f.weight == quant::WeightType::kGgml) {
    t = static_cast<g::Type>(f.ggml_type);
  } else {
    JNAS_CHECK_CONFIG(std::strlen(f.gguf_nearest) > 0,
                      "{}: format '{}' has no ggml type and no conversion to one", where, f.name);
    t = ggml_type_named(f.gguf_nearest);
  }
  const int64_t blk = g::type_info(t).block;
  JNAS_CHECK_CONFIG(
      K % blk == 0,
      "{}: format '{}' is written as ggml {}, whose rows are blocks of {} values, but this "
      "matrix has K = {} columns; GGUF cannot hold it (fix: a width that is a multiple of {}, "
      "or format q8_0 / f16 for this layer)",
      where, f.name, lower_name(t), blk, K, blk);
  return t;
}

double rel_error(const at::Tensor& got, const at::Tensor& want) {
  const double n = want.to(at::kDouble).norm().item<double>();
  const double e = (got.to(at::kDouble) - want.to(at::kDouble)).norm().item<double>();
  return n > 0 ? e / n : e;
}

struct TensorOut {
  std::string name;
  g::Type type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> data;
  GgufTensorReport report;
};

TensorOut emit(const std::string& name, const Part& p, g::Type t, bool requantized) {
  TensorOut o{name, t, {p.cols, p.rows}, {}, {name, p.format->name, lower_name(t), true, 0.0}};
  if (p.blocks.defined()) {
    o.data.assign(p.blocks.data_ptr<uint8_t>(), p.blocks.data_ptr<uint8_t>() + p.blocks.numel());
    return o;
  }
  if (t == g::Type::kF32) {
    o.data.resize(static_cast<size_t>(p.values.numel() * 4));
    std::memcpy(o.data.data(), p.values.contiguous().data_ptr<float>(), o.data.size());
    return o;
  }
  o.data = quantize_rows(p.values, t);
  o.report.rel_error = rel_error(dequantize_rows(o.data, t, p.rows, p.cols), p.values);
  // Exact when the values survived (a bf16 weight into f16 often does), else a conversion.
  o.report.exact = !requantized && o.report.rel_error == 0.0;
  return o;
}

TensorOut emit_dense(const std::string& name, const at::Tensor& w, g::Type t) {
  Part p;
  static const quant::QuantFormat& bf16 = quant::find_format("bf16");
  p.format = &bf16;
  p.rows = w.dim() == 2 ? w.size(0) : 1;
  p.cols = w.size(-1);
  p.values = w.to(at::kFloat).reshape({p.rows, p.cols}).contiguous();
  TensorOut o = emit(name, p, t, false);
  if (w.dim() == 1) o.ne = {p.cols};
  o.report.source_format = c10::toString(w.scalar_type());
  return o;
}

// Layer l's seven linears as file block `blk` (Q / K / V rows padded and permuted, o_proj
// columns padded), each in its ggml type; ConfigError (naming `where`) for what GGUF cannot hold.
void emit_linears(const model::LlamaModel& m, int64_t l, int64_t blk, const std::string& where,
                  std::vector<TensorOut>* outp) {
  std::vector<TensorOut>& out = *outp;
  const LayerSpec& s = m.specs()[static_cast<size_t>(l)];
  const int64_t H = m.config().hidden_size, d = m.config().head_dim;
  const int64_t nh = s.num_attention_heads, nkv = s.num_key_value_heads, hd = s.head_dim;
  const std::string p = fmt::format("blk.{}.", blk);
  // q, k, v rows of the fused qkv; gate, up of gate_up.
  const quant::QuantLinear& qkv = m.linear(l, LinearSlot::kQkv);
  const int64_t q_rows = nh * hd, kv_rows = nkv * hd;
  const struct {
    const char* name;
    int64_t row0, rows, heads;
    bool rotary;
  } qkv_parts[] = {{"attn_q", 0, q_rows, nh, true},
                   {"attn_k", q_rows, kv_rows, nkv, true},
                   {"attn_v", q_rows + kv_rows, kv_rows, nkv, false}};
  for (const auto& qp : qkv_parts) {
    Part part = pad_rows(slice_part(qkv, qp.row0, qp.rows), qp.heads, hd, d, qp.rotary);
    const g::Type t = target_type(*part.format, part.cols, where + " " + qp.name);
    out.push_back(emit(p + qp.name + ".weight", part, t, false));
  }
  {
    const quant::QuantLinear& o = m.linear(l, LinearSlot::kO);
    bool requantized = false;
    Part part = pad_columns(slice_part(o, 0, H), nh, hd, d, &requantized);
    const g::Type t = target_type(*part.format, part.cols, where + " attn_output");
    out.push_back(emit(p + "attn_output.weight", part, t, requantized));
  }
  const quant::QuantLinear& gu = m.linear(l, LinearSlot::kGateUp);
  const int64_t I = s.intermediate_size;
  for (const auto& [name, row0] : {std::pair{"ffn_gate", int64_t{0}}, std::pair{"ffn_up", I}}) {
    Part part = slice_part(gu, row0, I);
    out.push_back(emit(p + name + ".weight", part,
                       target_type(*part.format, part.cols, where + " " + name), false));
  }
  {
    Part part = slice_part(m.linear(l, LinearSlot::kDown), 0, H);
    out.push_back(emit(p + "ffn_down.weight", part,
                       target_type(*part.format, part.cols, where + " ffn_down"), false));
  }
}

// general.*, the architecture's keys (per-layer arrays for deci), tokenizer.ggml.* and
// jointnas.* provenance; sets r->architecture.
void write_metadata(const model::LlamaModel& m, const GgufVocab& vocab,
                    const GgufExportOptions& opts, GgufExportResult* rp,
                    const std::vector<uint32_t>& n_head, const std::vector<uint32_t>& n_kv,
                    const std::vector<uint32_t>& n_ff, GgufFile* file) {
  GgufExportResult& r = *rp;
  const model::LlamaConfig& c = m.config();
  const std::vector<LayerSpec>& specs = m.specs();
  const int64_t H = c.hidden_size, d = c.head_dim;
  auto all_same = [](const std::vector<uint32_t>& v) {
    for (uint32_t x : v) {
      if (x != v[0]) return false;
    }
    return true;
  };
  const bool uniform = all_same(n_head) && all_same(n_kv) && all_same(n_ff);
  r.architecture = uniform ? "llama" : "deci";
  const std::string a = r.architecture;
  file->add_string("general.architecture", a);
  file->add_string("general.name", opts.name.empty() ? "jointnas export" : opts.name);
  file->add_u32("general.quantization_version", 2);
  file->add_u32(a + ".vocab_size", static_cast<uint32_t>(c.vocab_size));
  file->add_u32(a + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  file->add_u32(a + ".embedding_length", static_cast<uint32_t>(H));
  file->add_u32(a + ".block_count", static_cast<uint32_t>(r.kept_layers.size()));
  if (uniform) {
    file->add_u32(a + ".feed_forward_length", n_ff[0]);
    file->add_u32(a + ".attention.head_count", n_head[0]);
    file->add_u32(a + ".attention.head_count_kv", n_kv[0]);
  } else {
    file->add_array_u32(a + ".feed_forward_length", n_ff);
    file->add_array_u32(a + ".attention.head_count", n_head);
    file->add_array_u32(a + ".attention.head_count_kv", n_kv);
  }
  file->add_u32(a + ".attention.key_length", static_cast<uint32_t>(d));
  file->add_u32(a + ".attention.value_length", static_cast<uint32_t>(d));
  file->add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(d));
  file->add_f32(a + ".rope.freq_base", static_cast<float>(c.rope.rope_theta));
  file->add_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));

  file->add_string("tokenizer.ggml.model", vocab.model);
  if (!vocab.pre.empty()) file->add_string("tokenizer.ggml.pre", vocab.pre);
  file->add_array_string("tokenizer.ggml.tokens", vocab.tokens);
  if (!vocab.scores.empty()) file->add_array_f32("tokenizer.ggml.scores", vocab.scores);
  file->add_array_i32("tokenizer.ggml.token_type", vocab.token_types);
  if (!vocab.merges.empty()) file->add_array_string("tokenizer.ggml.merges", vocab.merges);
  if (vocab.bos_id >= 0)
    file->add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  if (vocab.eos_id >= 0)
    file->add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  if (vocab.unk_id >= 0)
    file->add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(vocab.unk_id));
  file->add_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  file->add_bool("tokenizer.ggml.add_eos_token", false);

  // Provenance: where the file came from and what each block was.
  file->add_string("jointnas.format", "jointnas-gguf-export/1");
  std::vector<int32_t> kept(r.kept_layers.begin(), r.kept_layers.end());
  file->add_array_i32("jointnas.source_layers", kept);
  std::vector<std::string> formats;
  for (int64_t l : r.kept_layers) {
    const LayerSpec& s = specs[static_cast<size_t>(l)];
    formats.push_back(fmt::format("qkv={} o={} gate_up={} down={} head_dim={}", s.format_qkv,
                                  s.format_o, s.format_gate_up, s.format_down, s.head_dim));
  }
  file->add_array_string("jointnas.layer_specs", formats);
  if (opts.provenance.is_object()) {
    for (const auto& [k, v] : opts.provenance.items()) {
      file->add_string("jointnas." + k, v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
}

}  // namespace

GgufExportResult build_gguf(const model::LlamaModel& m, const GgufVocab& vocab,
                            const GgufExportOptions& opts, GgufFile* file) {
  const model::LlamaConfig& c = m.config();
  const std::vector<LayerSpec>& specs = m.specs();
  const int64_t d = c.head_dim;
  JNAS_CHECK_CONFIG(
      c.rope.rope_type == "default",
      "GGUF export: RoPE type '{}' is not supported yet (only 'default'); the file would "
      "need llama.cpp's rope_freqs tensor",
      c.rope.rope_type);
  JNAS_CHECK_CONFIG(!vocab.tokens.empty(), "GGUF export: the model has no tokenizer to embed");
  const g::Type embd_type = ggml_type_named(opts.embedding_type);
  GgufExportResult r;
  std::vector<TensorOut> out;
  // Checks and conversions first: nothing is written until every tensor is ready.
  std::vector<uint32_t> n_head, n_kv, n_ff;
  for (size_t l = 0; l < specs.size(); ++l) {
    const LayerSpec& s = specs[l];
    if (s.skip) continue;
    const int64_t nh = s.num_attention_heads, nkv = s.num_key_value_heads, hd = s.head_dim;
    const std::string where = fmt::format("layer {}", l);
    if (hd != d) {
      const double want = 1.0 / std::sqrt(static_cast<double>(d));
      JNAS_CHECK_CONFIG(
          s.attention_scale > 0 && std::fabs(s.attention_scale - want) <= 1e-12 * want,
          "{}: head size {} of {} with attention scale {} (GGUF keeps one head size and the "
          "scale 1/sqrt({}) = {}): the padded heads would not compute the same scores",
          where, hd, d, s.attention_scale, d, want);
    }
    r.kept_layers.push_back(static_cast<int64_t>(l));
    n_head.push_back(static_cast<uint32_t>(nh));
    n_kv.push_back(static_cast<uint32_t>(nkv));
    n_ff.push_back(static_cast<uint32_t>(s.intermediate_size));
    emit_linears(m, static_cast<int64_t>(l), static_cast<int64_t>(r.kept_layers.size()) - 1, where,
                 &out);
  }
  JNAS_CHECK_CONFIG(!r.kept_layers.empty(),
                    "GGUF export: every block is dropped; llama.cpp needs at least one");
  const auto sd = m.state_dict();
  auto tensor = [&](const std::string& name) {
    auto it = sd.find(name);
    JNAS_CHECK_CONFIG(it != sd.end(), "GGUF export: the model has no tensor '{}'", name);
    return it->second;
  };
  out.insert(out.begin(),
             emit_dense("token_embd.weight", tensor("model.embed_tokens.weight"), embd_type));
  out.insert(out.begin() + 1,
             emit_dense("output_norm.weight", tensor("model.norm.weight"), g::Type::kF32));
  if (!c.tie_word_embeddings) {
    out.insert(out.begin() + 2, emit_dense("output.weight", tensor("lm_head.weight"), embd_type));
  }
  for (size_t b = 0; b < r.kept_layers.size(); ++b) {
    const int64_t l = r.kept_layers[b];
    out.push_back(emit_dense(fmt::format("blk.{}.attn_norm.weight", b),
                             tensor(fmt::format("model.layers.{}.input_layernorm.weight", l)),
                             g::Type::kF32));
    out.push_back(emit_dense(
        fmt::format("blk.{}.ffn_norm.weight", b),
        tensor(fmt::format("model.layers.{}.post_attention_layernorm.weight", l)), g::Type::kF32));
  }

  write_metadata(m, vocab, opts, &r, n_head, n_kv, n_ff, file);
  for (TensorOut& t : out) {
    r.tensors.push_back(t.report);
    r.bytes += t.data.size();
    file->add_tensor(t.name, static_cast<uint32_t>(t.type), t.ne, std::move(t.data));
  }
  return r;
}

GgufExportResult write_gguf(const model::LlamaModel& m, const GgufVocab& vocab,
                            const GgufExportOptions& opts, const std::string& out) {
  GgufFile file;
  GgufExportResult r = build_gguf(m, vocab, opts, &file);
  write_file_atomic(out, file.serialize());
  return r;
}

Json gguf_report_json(const GgufExportResult& r) {
  Json tensors = Json::array();
  double worst = 0.0;
  int64_t converted = 0;
  for (const GgufTensorReport& t : r.tensors) {
    tensors.push_back(Json{{"name", t.name},
                           {"source_format", t.source_format},
                           {"ggml_type", t.ggml_type},
                           {"exact", t.exact},
                           {"rel_error", t.rel_error}});
    worst = std::max(worst, t.rel_error);
    converted += t.exact ? 0 : 1;
  }
  return Json{
      {"architecture", r.architecture}, {"kept_layers", r.kept_layers}, {"bytes", r.bytes},
      {"tensors_converted", converted}, {"max_rel_error", worst},       {"tensors", tensors}};
}

}  // namespace jointnas::exporting
