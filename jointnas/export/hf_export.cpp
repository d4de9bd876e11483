// A found model as a plain Llama or a DeciLM (nemotron-nas) HF directory; see hf_export.h.
#include "jointnas/export/hf_export.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/export/hf_directory.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::exporting {
namespace {

using model::LayerSpec;
using model::LinearSlot;

bool uniform(const model::LlamaConfig& c, const std::vector<LayerSpec>& specs) {
  for (const LayerSpec& s : specs) {
    if (s.skip || s.num_attention_heads != c.num_attention_heads ||
        s.num_key_value_heads != c.num_key_value_heads ||
        s.intermediate_size != c.intermediate_size) {
      return false;
    }
  }
  return true;
}

// fp32 [rows, K] of a fused linear's row range, as the runtime computes with it.
at::Tensor rows_of(const quant::QuantLinear& lin, int64_t row0, int64_t rows) {
  return quant::dequantize_ref(quant::unpack(lin.packed()), at::kFloat).narrow(0, row0, rows);
}

// Heads of hd rows -> `to_heads` heads of d rows (zero padded; rotary rows keep their pairs'
// places [0, hd/2) and [d/2, d/2 + hd/2) in HF's rotate-half layout, V rows take [0, hd)).
at::Tensor pad_head_rows(const at::Tensor& w, int64_t heads, int64_t to_heads, int64_t hd,
                         int64_t d, bool rotary) {
  at::Tensor out = at::zeros({to_heads * d, w.size(1)}, w.options());
  for (int64_t h = 0; h < heads; ++h) {
    if (rotary) {
      out.narrow(0, h * d, hd / 2).copy_(w.narrow(0, h * hd, hd / 2));
      out.narrow(0, h * d + d / 2, hd / 2).copy_(w.narrow(0, h * hd + hd / 2, hd / 2));
    } else {
      out.narrow(0, h * d, hd).copy_(w.narrow(0, h * hd, hd));
    }
  }
  return out;
}

at::Tensor pad_head_columns(const at::Tensor& w, int64_t heads, int64_t to_heads, int64_t hd,
                            int64_t d) {
  at::Tensor out = at::zeros({w.size(0), to_heads * d}, w.options());
  for (int64_t h = 0; h < heads; ++h) out.narrow(1, h * d, hd).copy_(w.narrow(1, h * hd, hd));
  return out;
}

}  // namespace

int64_t deci_intermediate_size(double ffn_mult, int64_t hidden) {
  const int64_t n = static_cast<int64_t>(2.0 * ffn_mult * static_cast<double>(hidden) / 3.0);
  return n % 256 == 0 ? n : n + 256 - n % 256;
}

Json deci_block_configs(const model::LlamaConfig& c, const std::vector<LayerSpec>& specs) {
  Json blocks = Json::array();
  const int64_t H = c.hidden_size, nh = c.num_attention_heads;
  for (size_t l = 0; l < specs.size(); ++l) {
    const LayerSpec& s = specs[l];
    if (s.skip) {
      blocks.push_back(
          Json{{"attention",
                {{"n_heads_in_group", nullptr}, {"no_op", true}, {"replace_with_linear", false}}},
               {"ffn", {{"ffn_mult", nullptr}, {"no_op", true}, {"replace_with_linear", false}}}});
      continue;
    }
    JNAS_CHECK_CONFIG(
        s.num_key_value_heads > 0 && nh % s.num_key_value_heads == 0 && s.num_attention_heads <= nh,
        "layer {}: {} KV heads (and {} query heads) cannot be a DeciLM block of the model's {} "
        "query "
        "heads: block_configs need n_heads_in_group = {} / KV heads",
        l, s.num_key_value_heads, s.num_attention_heads, nh, nh);
    // ffn_mult with int(2 m H / 3) = I exactly: m = 3 I / (2 H), checked through vLLM's formula.
    const double mult =
        3.0 * static_cast<double>(s.intermediate_size) / (2.0 * static_cast<double>(H));
    JNAS_CHECK_CONFIG(
        deci_intermediate_size(mult, H) == s.intermediate_size,
        "layer {}: MLP width {} is not DeciLM's intermediate size for any ffn_mult (vLLM rounds "
        "int(2 ffn_mult {} / 3) up to a multiple of 256; ffn_mult {} gives {}); fix: a width that "
        "is a multiple of 256, or --to gguf",
        l, s.intermediate_size, H, mult, deci_intermediate_size(mult, H));
    blocks.push_back(
        Json{{"attention",
              {{"n_heads_in_group", nh / s.num_key_value_heads},
               {"no_op", false},
               {"replace_with_linear", false}}},
             {"ffn", {{"ffn_mult", mult}, {"no_op", false}, {"replace_with_linear", false}}}});
  }
  return blocks;
}

HfExportResult write_hf_model(const model::LlamaModel& m, const model::Checkpoint& source,
                              const std::string& model_path, const std::string& dtype,
                              const std::string& out) {
  const model::LlamaConfig& c = m.config();
  const std::vector<LayerSpec>& specs = m.specs();
  const int64_t H = c.hidden_size, d = c.head_dim, nh_full = c.num_attention_heads;
  const bool plain = uniform(c, specs);
  HfExportResult r;
  Json blocks;
  if (!plain) blocks = deci_block_configs(c, specs);  // refuses before anything is written
  for (const LayerSpec& s : specs) {
    if (s.skip || s.head_dim == d) continue;
    const double want = 1.0 / std::sqrt(static_cast<double>(d));
    JNAS_CHECK_CONFIG(
        s.attention_scale > 0 && std::fabs(s.attention_scale - want) <= 1e-12 * want,
        "a head size {} of {} with attention scale {}: HF keeps one head size and 1/sqrt({})",
        s.head_dim, d, s.attention_scale, d);
  }
  model::Checkpoint ck;
  ck.config = c;
  ck.config.layer_specs.clear();
  const auto sd = m.state_dict();
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}) {
    if (sd.count(n)) ck.tensors[n] = sd.at(n).to(at::kFloat);
  }
  for (size_t l = 0; l < specs.size(); ++l) {
    const LayerSpec& s = specs[l];
    if (s.skip) continue;
    const int64_t L = static_cast<int64_t>(l), nh = s.num_attention_heads,
                  nkv = s.num_key_value_heads, hd = s.head_dim, I = s.intermediate_size;
    const std::string p = fmt::format("model.layers.{}.", l);
    ck.tensors[p + "input_layernorm.weight"] = sd.at(p + "input_layernorm.weight").to(at::kFloat);
    ck.tensors[p + "post_attention_layernorm.weight"] =
        sd.at(p + "post_attention_layernorm.weight").to(at::kFloat);
    const quant::QuantLinear& qkv = m.linear(L, LinearSlot::kQkv);
    // Query heads beyond the kept groups' are zero rows here and zero o_proj columns below.
    ck.tensors[p + "self_attn.q_proj.weight"] =
        pad_head_rows(rows_of(qkv, 0, nh * hd), nh, nh_full, hd, d, true);
    ck.tensors[p + "self_attn.k_proj.weight"] =
        pad_head_rows(rows_of(qkv, nh * hd, nkv * hd), nkv, nkv, hd, d, true);
    ck.tensors[p + "self_attn.v_proj.weight"] =
        pad_head_rows(rows_of(qkv, (nh + nkv) * hd, nkv * hd), nkv, nkv, hd, d, false);
    ck.tensors[p + "self_attn.o_proj.weight"] =
        pad_head_columns(rows_of(m.linear(L, LinearSlot::kO), 0, H), nh, nh_full, hd, d);
    const quant::QuantLinear& gu = m.linear(L, LinearSlot::kGateUp);
    ck.tensors[p + "mlp.gate_proj.weight"] = rows_of(gu, 0, I);
    ck.tensors[p + "mlp.up_proj.weight"] = rows_of(gu, I, I);
    ck.tensors[p + "mlp.down_proj.weight"] = rows_of(m.linear(L, LinearSlot::kDown), 0, H);
  }
  model::save_hf_directory(ck, out, dtype);
  copy_tokenizer(source, model_path, out);
  ck.config.torch_dtype = dtype;
  Json cfg = ck.config.to_json();
  if (plain) {
    r.architecture = "LlamaForCausalLM";
  } else {
    // vLLM's nemotron_nas (DeciLMForCausalLM) reads these; num_key_value_heads is per block.
    r.architecture = "DeciLMForCausalLM";
    cfg["architectures"] = Json::array({r.architecture});
    cfg["model_type"] = "nemotron-nas";
    cfg["block_configs"] = blocks;
    cfg["num_key_value_heads"] = nullptr;  // per block: num_attention_heads / n_heads_in_group
    cfg["intermediate_size"] = nullptr;    // per block: from ffn_mult
  }
  write_file_atomic((std::filesystem::path(out) / "config.json").string(), cfg.dump(2) + "\n");
  r.config = cfg;
  return r;
}

}  // namespace jointnas::exporting
