// Llama forward pass. Numerics follow transformers' LlamaForCausalLM (RMSNorm in fp32 then cast,
// RoPE tables from fp32 inverse frequencies, SDPA attention) so that fp32 logits agree with it to
// rounding.
#include "jointnas/model/llama.h"

#include <ATen/ATen.h>
#include <fmt/ranges.h>

#include <cmath>
#include <mutex>
#include <numbers>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/machine.h"
#include "jointnas/kernels/decode_attention.h"
#include "jointnas/kernels/fused.h"
#include "jointnas/kernels/linear.h"
#include "jointnas/quant/quantizing_producers.h"

namespace jointnas::model {
namespace {

at::ScalarType parse_file_dtype(const std::string& s) {
  if (s == "float32" || s == "float") return at::kFloat;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "float16" || s == "half") return at::kHalf;
  return at::ScalarType::Undefined;
}

bool is_packed_dtype(at::ScalarType t) {
  return t == at::kFloat8_e4m3fn || t == at::kChar || t == at::kByte;
}

// HF tensor names, row counts and column count of the pieces of one fused linear.
std::vector<std::tuple<std::string, int64_t, int64_t>> linear_parts(const LayerSpec& s, int64_t H,
                                                                    LinearSlot slot) {
  const int64_t q_out = s.num_attention_heads * s.head_dim, kv_out = s.num_key_value_heads * s.head_dim;
  const int64_t I = s.intermediate_size;
  switch (slot) {
    case LinearSlot::kQkv:
      return {{"self_attn.q_proj", q_out, H}, {"self_attn.k_proj", kv_out, H}, {"self_attn.v_proj", kv_out, H}};
    case LinearSlot::kO: return {{"self_attn.o_proj", H, q_out}};
    case LinearSlot::kGateUp: return {{"mlp.gate_proj", I, H}, {"mlp.up_proj", I, H}};
    case LinearSlot::kDown: return {{"mlp.down_proj", H, I}};
  }
  return {};
}

// The packed tensors of one linear (`<base>.weight`, `.weight_scale`, `.weight_zero`), with
// dtype and shape checked against the format and the layer spec: these come from files.
quant::PackedWeight read_packed(const Checkpoint& ck, const std::string& base,
                                const quant::QuantFormat& f, int64_t rows, int64_t cols) {
  JNAS_CHECK_IO(f.quantized(), "{}: '{}.weight' is not a float tensor but the layer's format is '{}'",
                ck.config_source, base, f.name);
  // The group is the format's rule for `cols`, unless the scale tensor says a smaller allowed one
  // (an o_proj cut to a smaller head size keeps groups inside each head: docs/search.md).
  int64_t g = f.group_for(cols);
  if (auto it = ck.tensors.find(base + ".weight_scale");
      it != ck.tensors.end() && it->second.dim() == 2 && it->second.size(1) > 0 &&
      cols % it->second.size(1) == 0 && f.allows_group(cols, cols / it->second.size(1))) {
    g = cols / it->second.size(1);
  }
  auto fetch = [&](const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
    auto it = ck.tensors.find(name);
    if (it == ck.tensors.end()) {
      throw IoError(fmt::format("{}: missing tensor '{}' of a {} linear", ck.config_source, name, f.name),
                    "the checkpoint is incomplete or config.json's jointnas_layer_specs disagree");
    }
    const at::Tensor& t = it->second;
    JNAS_CHECK_IO(t.scalar_type() == dtype && t.sizes().vec() == shape,
                  "{}: tensor '{}' is {} [{}], format {} expects {} [{}]", ck.tensor_source.at(name),
                  name, c10::toString(t.scalar_type()), fmt::join(t.sizes(), ", "), f.name,
                  c10::toString(dtype), fmt::join(shape, ", "));
    return t;
  };
  quant::PackedWeight p;
  p.format = &f;
  p.out_features = rows;
  p.in_features = cols;
  p.group = g;
  if (f.weight == quant::WeightType::kGgml) {
    // ggml's blocks, as GGUF stores them: no scale tensors (they are inside the blocks).
    JNAS_CHECK_IO(cols % f.block() == 0, "{}: '{}' has {} columns, not a whole number of {} blocks of {}",
                  ck.config_source, base, cols, f.name, f.block());
    p.group = cols;
    p.data = fetch(base + ".weight", at::kByte, {rows, f.weight_bytes(1, cols)});
    return p;
  }
  const bool int4 = f.weight == quant::WeightType::kInt && f.weight_bits == 4;
  const at::ScalarType data_dtype = f.weight == quant::WeightType::kFp8E4M3 ? at::kFloat8_e4m3fn
                                    : int4                                  ? at::kByte
                                                                            : at::kChar;
  p.data = fetch(base + ".weight", data_dtype, {rows, int4 ? cols / 2 : cols});
  p.scale = fetch(base + ".weight_scale", f.scale_dtype, {rows, cols / g});
  if (f.asymmetric) p.zero = fetch(base + ".weight_zero", at::kByte, {rows, cols / g});
  return p;
}

quant::PackedWeight concat_rows(const std::vector<quant::PackedWeight>& parts) {
  if (parts.size() == 1) return parts[0];
  quant::PackedWeight p = parts[0];
  std::vector<at::Tensor> d, s, z;
  p.out_features = 0;
  for (const auto& q : parts) {
    p.out_features += q.out_features;
    d.push_back(q.data);
    s.push_back(q.scale);
    if (q.zero.defined()) z.push_back(q.zero);
  }
  p.data = at::cat(d, 0);
  if (p.scale.defined()) p.scale = at::cat(s, 0);
  if (!z.empty()) p.zero = at::cat(z, 0);
  return p;
}

}  // namespace

quant::QuantLinear& LayerWeights::linear(LinearSlot s) {
  switch (s) {
    case LinearSlot::kQkv: return qkv;
    case LinearSlot::kO: return o_proj;
    case LinearSlot::kGateUp: return gate_up;
    case LinearSlot::kDown: return down_proj;
  }
  return qkv;
}

const quant::QuantLinear& LayerWeights::linear(LinearSlot s) const {
  return const_cast<LayerWeights*>(this)->linear(s);
}

at::Tensor rope_inv_freq(int64_t head_dim, double theta, const RopeParameters& rope) {
  // inv_freq_i = 1 / theta^(2i/d), computed in fp64 and rounded once to fp32 (HF computes it in
  // fp32; the two agree to 1 ulp). fp64 makes a cut head exact: the first k pairs of a head of d
  // at base theta and a head of 2k at base theta^(2k/d) round to the same fp32 frequencies, so an
  // extracted sub-network rotates q and k bit for bit as the supernet did (docs/search.md).
  at::Tensor idx = at::arange(0, head_dim, 2, at::kLong).to(at::kDouble) / static_cast<double>(head_dim);
  at::Tensor inv = (1.0 / at::pow(theta, idx)).to(at::kFloat);
  if (rope.rope_type == "llama3") {
    // Llama-3.1 frequency scaling (transformers _compute_llama3_parameters): long wavelengths are
    // divided by `factor`, short ones kept, the band between interpolated smoothly.
    const double old_ctx = static_cast<double>(rope.original_max_position_embeddings);
    const double low_wl = old_ctx / rope.low_freq_factor;
    const double high_wl = old_ctx / rope.high_freq_factor;
    at::Tensor wavelen = 2.0 * std::numbers::pi / inv;
    at::Tensor scaled = at::where(wavelen > low_wl, inv / rope.factor, inv);
    at::Tensor smooth = (old_ctx / wavelen - rope.low_freq_factor) /
                        (rope.high_freq_factor - rope.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
    at::Tensor medium = at::logical_not(wavelen < high_wl).logical_and(at::logical_not(wavelen > low_wl));
    inv = at::where(medium, smoothed, scaled);
  }
  return inv;
}

LlamaModel LlamaModel::from_checkpoint(const Checkpoint& ck, RuntimeOptions opts,
                                       std::vector<LayerSpec> specs) {
  LlamaModel m;
  m.config_ = ck.config;
  m.opts_ = opts;
  m.specs_ = specs.empty() ? dense_layer_specs(ck.config) : std::move(specs);
  const LlamaConfig& c = m.config_;
  JNAS_CHECK_IO(static_cast<int64_t>(m.specs_.size()) == c.num_hidden_layers,
                "{}: {} layer specs for {} layers", ck.config_source, m.specs_.size(),
                c.num_hidden_layers);
  const at::ScalarType file_dtype = parse_file_dtype(c.torch_dtype);

  // Fetches a tensor by HF name, checking presence, floating dtype and shape.
  auto get = [&](const std::string& name, std::vector<int64_t> shape) -> at::Tensor {
    auto it = ck.tensors.find(name);
    if (it == ck.tensors.end()) {
      throw IoError(fmt::format("{}: missing tensor '{}'", ck.config_source, name),
                    "the checkpoint is incomplete or its config.json describes another model");
    }
    const at::Tensor& t = it->second;
    const std::string& src = ck.tensor_source.at(name);
    if (!t.is_floating_point()) {
      throw IoError(fmt::format("{}: tensor '{}' has dtype {}, expected a floating type", src, name,
                                c10::toString(t.scalar_type())));
    }
    if (file_dtype != at::ScalarType::Undefined && t.scalar_type() != file_dtype) {
      throw IoError(fmt::format("{}: tensor '{}' is {} but config.json says dtype '{}'", src, name,
                                c10::toString(t.scalar_type()), c.torch_dtype),
                    "fix the 'dtype' (or 'torch_dtype') field of config.json or re-export");
    }
    if (t.sizes().vec() != shape) {
      throw IoError(fmt::format("{}: tensor '{}' has shape [{}] but config.json implies [{}]", src,
                                name, fmt::join(t.sizes(), ", "), fmt::join(shape, ", ")),
                    "config.json and the weights disagree; check hidden_size, head_dim, heads");
    }
    return t.to(opts.device, opts.dtype);
  };

  const int64_t H = c.hidden_size, V = c.vocab_size;
  m.embed_tokens_ = get("model.embed_tokens.weight", {V, H});
  m.norm_ = get("model.norm.weight", {H});
  m.lm_head_ = c.tie_word_embeddings ? m.embed_tokens_ : get("lm_head.weight", {V, H});
  m.layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerSpec& s = m.specs_[l];
    if (s.skip) continue;
    JNAS_CHECK_IO(s.num_attention_heads > 0 && s.num_key_value_heads > 0 &&
                      s.num_attention_heads % s.num_key_value_heads == 0 && s.head_dim > 0 &&
                      s.head_dim % 2 == 0 && s.intermediate_size > 0,
                  "{}: invalid layer spec {}: heads {} kv heads {} head_dim {} intermediate {}",
                  ck.config_source, l, s.num_attention_heads, s.num_key_value_heads, s.head_dim,
                  s.intermediate_size);
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights& w = m.layers_[l];
    w.input_layernorm = get(p + "input_layernorm.weight", {H});
    w.post_attention_layernorm = get(p + "post_attention_layernorm.weight", {H});
    for (int slot = 0; slot < kNumSlots; ++slot) {
      const LinearSlot ls = static_cast<LinearSlot>(slot);
      std::vector<at::Tensor> dense;
      std::vector<quant::PackedWeight> packed;
      const auto parts = linear_parts(s, H, ls);
      for (const auto& [name, rows, cols] : parts) {
        const std::string wname = p + name + ".weight";
        auto it = ck.tensors.find(wname);
        if (it != ck.tensors.end() && it->second.is_floating_point() &&
            !is_packed_dtype(it->second.scalar_type())) {
          dense.push_back(get(wname, {rows, cols}));
        } else {
          packed.push_back(read_packed(ck, p + name, quant::find_format(s.format_of(slot)), rows, cols));
        }
      }
      JNAS_CHECK_IO(dense.empty() || packed.empty(),
                    "{}: layer {} mixes float and packed tensors within one fused linear",
                    ck.config_source, l);
      const quant::QuantFormat& f = quant::find_format(s.format_of(slot));
      if (!dense.empty()) {
        // A float checkpoint with a quantized format requested: round-to-nearest at load.
        at::Tensor wcat = dense.size() == 1 ? dense[0] : at::cat(dense, 0);
        w.linear(ls) = quant::QuantLinear::quantize(wcat, f, opts.device, opts.dtype);
      } else {
        w.linear(ls) = quant::QuantLinear(concat_rows(packed), opts.device, opts.dtype);
      }
    }
  }
  m.build_rope_tables();
  return m;
}

LlamaModel LlamaModel::random(const LlamaConfig& config, RuntimeOptions opts, uint64_t seed,
                              std::vector<LayerSpec> specs) {
  LlamaModel m;
  m.config_ = config;
  m.opts_ = opts;
  m.specs_ = specs.empty() ? dense_layer_specs(config) : std::move(specs);
  at::Generator gen = at::globalContext().defaultGenerator(opts.device);
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  auto to = at::TensorOptions().device(opts.device).dtype(opts.dtype);
  // std 0.02 matrices (HF initializer_range) and unit norm weights: activations stay finite.
  auto mat = [&](int64_t r, int64_t c) { return at::normal(0.0, 0.02, {r, c}, gen, to); };
  const int64_t H = config.hidden_size, V = config.vocab_size;
  m.embed_tokens_ = mat(V, H);
  m.norm_ = at::ones({H}, to);
  m.lm_head_ = config.tie_word_embeddings ? m.embed_tokens_ : mat(V, H);
  m.layers_.resize(static_cast<size_t>(config.num_hidden_layers));
  for (size_t l = 0; l < m.layers_.size(); ++l) {
    const LayerSpec& s = m.specs_[l];
    if (s.skip) continue;
    LayerWeights& w = m.layers_[l];
    const int64_t q_out = s.num_attention_heads * s.head_dim, kv_out = s.num_key_value_heads * s.head_dim;
    w.input_layernorm = at::ones({H}, to);
    w.post_attention_layernorm = at::ones({H}, to);
    const at::Tensor mats[kNumSlots] = {mat(q_out + 2 * kv_out, H), mat(H, q_out),
                                              mat(2 * s.intermediate_size, H),
                                              mat(H, s.intermediate_size)};
    for (int slot = 0; slot < kNumSlots; ++slot) {
      w.linear(static_cast<LinearSlot>(slot)) = quant::QuantLinear::quantize(
          mats[slot], quant::find_format(s.format_of(slot)), opts.device, opts.dtype);
    }
  }
  m.build_rope_tables();
  return m;
}

void LlamaModel::build_rope_tables() {
  // One table per distinct (head_dim, theta), shared by its layers and grown on first use.
  std::map<std::pair<int64_t, double>, std::shared_ptr<const RopeTables>> tables;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = specs_[l];
    if (s.skip) continue;
    auto& t = tables[{s.head_dim, s.rope_theta}];
    if (!t) {
      const GgmlRopeAngles ggml{opts_.ggml_rope, static_cast<float>(config_.rope.rope_theta), config_.head_dim};
      t = std::make_shared<const RopeTables>(s.head_dim, s.rope_theta, config_.rope, config_.max_position_embeddings,
                                             opts_.device, ggml);
    }
    layers_[l].rope = t;
  }
}

KVCache LlamaModel::new_cache(int64_t batch, int64_t max_len) const {
  JNAS_CHECK_CONFIG(max_len <= config_.max_position_embeddings,
                    "context of {} tokens exceeds max_position_embeddings = {}", max_len,
                    config_.max_position_embeddings);
  JNAS_CHECK_CONFIG(batch >= 1 && max_len >= 1, "a KV cache needs batch >= 1 and max_len >= 1, got {} x {}", batch,
                    max_len);
  if (opts_.device.is_cpu()) {
    // K and V of every kept layer; refused before allocating (a GPU's allocator says so itself).
    uint64_t bytes = 0;
    for (const LayerSpec& s : specs_) {
      if (s.skip) continue;
      bytes = saturating_add(bytes, saturating_mul(saturating_mul(2 * static_cast<uint64_t>(batch),
                                                                  static_cast<uint64_t>(max_len)),
                                                   static_cast<uint64_t>(s.num_key_value_heads * s.head_dim *
                                                                         at::elementSize(opts_.dtype))));
    }
    check_memory_fits(bytes, fmt::format("the KV cache of {} x {} positions", batch, max_len),
                      "the batch or the context");
  }
  for (const LayerWeights& w : layers_) {
    if (w.rope) w.rope->get(max_len);  // grown now, never inside a captured decode step
  }
  KVCache c;
  c.batch = batch;
  c.max_len = max_len;
  auto to = at::TensorOptions().device(opts_.device).dtype(opts_.dtype);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = specs_[l];
    if (s.skip) {
      c.k.emplace_back();
      c.v.emplace_back();
      continue;
    }
    c.k.push_back(at::zeros({batch, s.num_key_value_heads, max_len, s.head_dim}, to));
    c.v.push_back(at::zeros({batch, s.num_key_value_heads, max_len, s.head_dim}, to));
  }
  return c;
}

at::Tensor LlamaModel::block(int64_t l, const at::Tensor& x, const at::Tensor& positions,
                             KVCache* cache, int64_t past, const at::Tensor* static_mask,
                             const ForwardHooks* hooks, int64_t rope_positions) const {
  const LayerSpec& s = specs_[l];
  const LayerWeights& w = layers_[l];
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t nh = s.num_attention_heads, nkv = s.num_key_value_heads, hd = s.head_dim;
  const double eps = config_.rms_norm_eps;

  auto tap = [&](LinearSlot slot, const at::Tensor& in) {
    if (hooks != nullptr && hooks->on_linear_input) hooks->on_linear_input(l, slot, in);
  };
  // A linear that quantizes its input per token (w8a8, fp8) gets it quantized by its producer
  // (RMSNorm, the attention output's transpose, SiLU(gate) * up) in one kernel on CUDA: bitwise
  // the unfused pair, one pass over the activations fewer. A hook that reads the bf16 input takes
  // the unfused path.
  const bool taps = hooks != nullptr && hooks->on_linear_input;
  auto fuses = [&](const quant::QuantLinear& lin) {
    return !taps && quant::producer_quantizes_input(lin.format(), x.device(), x.scalar_type());
  };
  // The norm's output for the linear after it: bf16, or quantized by the norm.
  at::Tensor h;
  quant::QuantizedAct hq;
  at::Tensor qkv;  // [B, T, (nh + 2 nkv) hd]
  if (fuses(w.qkv)) {
    hq = quant::rms_norm_quantized(x, w.input_layernorm, eps, w.qkv.format());
    qkv = w.qkv.forward(hq);
  } else {
    h = kernels::rms_norm(x, w.input_layernorm, eps);
    tap(LinearSlot::kQkv, h);
    qkv = w.qkv.forward(h);
  }
  // RoPE on q and k, k and v written to their cache slots (one kernel on CUDA). Without a cache
  // the "cache" is a scratch buffer of exactly these T positions.
  at::Tensor k_buf, v_buf;
  if (cache != nullptr) {
    k_buf = cache->k[l];
    v_buf = cache->v[l];
  } else {
    k_buf = at::empty({B, nkv, T, hd}, x.options());
    v_buf = at::empty({B, nkv, T, hd}, x.options());
  }
  const auto [rope_cos, rope_sin] = w.rope->get(rope_positions);  // [P >= rope_positions, hd] each
  at::Tensor q = kernels::rope_and_cache(qkv, positions, rope_cos, rope_sin, nh, nkv, hd,
                                         k_buf, v_buf);  // [B, nh, T, hd]

  const double scale = s.attention_scale > 0.0 ? s.attention_scale
                                                  : 1.0 / std::sqrt(static_cast<double>(hd));
  const bool gqa = nh != nkv;
  // Decode (T == 1) with GQA: fold each KV group's query heads into the query-length axis,
  // q [B, nh, 1, hd] -> [B, nkv, nh/nkv, hd]. All of them sit at the same position, so the result
  // is exact, and no kernel has to expand K/V to nh heads (fused kernels take it as is).
  const bool fold = T == 1 && gqa;
  if (fold) q = q.reshape({B, nkv, nh / nkv, hd});
  const bool sdpa_gqa = gqa && !fold;
  at::Tensor attn;
  if (T == 1 && (static_mask != nullptr || cache != nullptr) &&
      kernels::decode_attention_applies(q, k_buf)) {
    // Decode on CUDA: split-K kernel over exactly the valid keys 0..pos (positions = [pos]).
    attn = kernels::decode_attention(q, k_buf, v_buf, positions, scale);
  } else if (static_mask != nullptr) {
    // CUDA-graph decode: the whole preallocated buffer, masked to key positions <= pos.
    attn = at::scaled_dot_product_attention(q, k_buf, v_buf, *static_mask, 0.0, false, scale, sdpa_gqa);
  } else if (cache == nullptr) {
    attn = at::scaled_dot_product_attention(q, k_buf, v_buf, {}, 0.0, /*is_causal=*/T > 1, scale,
                                            sdpa_gqa);
  } else {
    at::Tensor kk = k_buf.narrow(2, 0, past + T);
    at::Tensor vv = v_buf.narrow(2, 0, past + T);
    if (T == 1) {
      attn = at::scaled_dot_product_attention(q, kk, vv, {}, 0.0, false, scale, sdpa_gqa);
    } else if (past == 0) {
      attn = at::scaled_dot_product_attention(q, kk, vv, {}, 0.0, true, scale, sdpa_gqa);
    } else {
      // Query i (absolute position past + i) sees keys j <= past + i.
      at::Tensor qi = at::arange(T, positions.options()).unsqueeze(1) + past;
      at::Tensor kj = at::arange(past + T, positions.options()).unsqueeze(0);
      attn = at::scaled_dot_product_attention(q, kk, vv, kj.le(qi), 0.0, false, scale, sdpa_gqa);
    }
  }
  if (fold) attn = attn.reshape({B, nh, 1, hd});
  at::Tensor out;
  if (fuses(w.o_proj)) {
    // The codes of [B, T, nh hd] read straight from [B, nh, T, hd]; the attention output is
    // released before o_proj runs.
    const quant::QuantizedAct a = quant::attention_output_quantized(attn, w.o_proj.format());
    attn = at::Tensor();
    out = w.o_proj.forward_add(a, x);
  } else {
    attn = attn.transpose(1, 2).reshape({B, T, nh * hd});
    tap(LinearSlot::kO, attn);
    out = w.o_proj.forward_add(attn, x);
  }

  // The second norm's output replaces the first (allocated before the first is released).
  at::Tensor gu;  // [B, T, 2I]
  if (fuses(w.gate_up)) {
    quant::QuantizedAct n = quant::rms_norm_quantized(out, w.post_attention_layernorm, eps,
                                                      w.gate_up.format());
    hq = std::move(n);
    h = at::Tensor();
    gu = w.gate_up.forward(hq);
  } else {
    at::Tensor n = kernels::rms_norm(out, w.post_attention_layernorm, eps);
    h = std::move(n);
    hq = {};
    tap(LinearSlot::kGateUp, h);
    gu = w.gate_up.forward(h);
  }
  if (fuses(w.down_proj)) {
    const quant::QuantizedAct act = quant::silu_mul_quantized(gu, w.down_proj.format());
    gu = at::Tensor();
    return w.down_proj.forward_add(act, out);
  }
  at::Tensor act = kernels::silu_mul(gu);  // [B, T, I]
  gu = at::Tensor();
  tap(LinearSlot::kDown, act);
  return w.down_proj.forward_add(act, out);
}

uint64_t forward_bytes(const LlamaConfig& config, const std::vector<LayerSpec>& specs, int64_t B, int64_t T,
                       bool last_only, int64_t dtype_bytes) {
  if (B <= 0 || T <= 0) return 0;
  uint64_t widest = static_cast<uint64_t>(config.hidden_size);
  for (const LayerSpec& s : specs) {
    if (s.skip) continue;
    widest = std::max<uint64_t>(
        widest, static_cast<uint64_t>(std::max((s.num_attention_heads + 2 * s.num_key_value_heads) * s.head_dim,
                                               2 * s.intermediate_size)));
  }
  const uint64_t rows = saturating_mul(static_cast<uint64_t>(B), static_cast<uint64_t>(T));
  const uint64_t logits = saturating_mul(last_only ? static_cast<uint64_t>(B) : rows,
                                         saturating_mul(static_cast<uint64_t>(config.vocab_size), 4));
  const uint64_t act = saturating_mul(saturating_mul(rows, widest), 3 * static_cast<uint64_t>(dtype_bytes));
  return saturating_add(saturating_mul(logits, 2), act);
}

void LlamaModel::check_forward_fits(int64_t B, int64_t T, bool last_only, const std::string& keys) const {
  if (!opts_.device.is_cpu()) return;  // a GPU's allocator refuses for itself
  check_memory_fits(forward_bytes(config_, specs_, B, T, last_only, static_cast<int64_t>(at::elementSize(opts_.dtype))),
                    fmt::format("a forward pass of {} x {} tokens", B, T), keys);
}

at::Tensor LlamaModel::forward(const at::Tensor& ids, KVCache* cache, bool last_only,
                               const ForwardHooks* hooks) const {
  TORCH_CHECK(ids.dim() == 2, "expected ids [B, T], got ", ids.sizes());
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache != nullptr ? cache->length : 0;
  if (cache != nullptr) {
    JNAS_CHECK_CONFIG(cache->batch == B, "cache batch {} != input batch {}", cache->batch, B);
    JNAS_CHECK_CONFIG(past + T <= cache->max_len,
                      "sequence of {} tokens exceeds the KV cache ({} tokens)", past + T,
                      cache->max_len);
  }
  JNAS_CHECK_CONFIG(past + T <= config_.max_position_embeddings,
                    "sequence of {} tokens exceeds max_position_embeddings = {}", past + T,
                    config_.max_position_embeddings);
  check_forward_fits(B, T, last_only, "the batch or the sequence length");
  at::Tensor dev_ids = ids.to(opts_.device, at::kLong);
  // Token ids come from tokenizers and users: check the range rather than read out of bounds.
  if (dev_ids.numel() > 0) {
    const int64_t lo = dev_ids.min().item<int64_t>(), hi = dev_ids.max().item<int64_t>();
    JNAS_CHECK_CONFIG(lo >= 0 && hi < config_.vocab_size, "token id out of range [{}, {}]: min {} max {}",
                      0, config_.vocab_size - 1, lo, hi);
  }
  return run(dev_ids, cache, last_only, hooks);
}

at::Tensor LlamaModel::prefill_static(const at::Tensor& dev_ids, KVCache& cache) const {
  TORCH_CHECK(dev_ids.dim() == 2 && dev_ids.scalar_type() == at::kLong && dev_ids.device() == opts_.device,
              "prefill_static: expected int64 ids [B, T] on ", opts_.device);
  JNAS_CHECK_CONFIG(cache.batch == dev_ids.size(0) && cache.length + dev_ids.size(1) <= cache.max_len,
                    "prefill_static: {} x {} tokens do not fit the cache ({} x {}, {} used)", dev_ids.size(0),
                    dev_ids.size(1), cache.batch, cache.max_len, cache.length);
  return run(dev_ids, &cache, true, nullptr);
}

at::Tensor LlamaModel::run(const at::Tensor& dev_ids, KVCache* cache, bool last_only,
                           const ForwardHooks* hooks) const {
  const int64_t T = dev_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length : 0;
  at::Tensor x = at::embedding(embed_tokens_, dev_ids);  // [B, T, H]
  at::Tensor positions = at::arange(past, past + T, dev_ids.options());
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    if (specs_[l].skip) continue;
    at::Tensor out = block(l, x, positions, cache, past, nullptr, hooks, past + T);
    if (hooks != nullptr && hooks->on_block) hooks->on_block(l, x, out);
    x = out;
    if (hooks != nullptr && hooks->stop_after_layer == l) return {};
  }
  if (cache != nullptr) cache->length = past + T;
  if (last_only) x = x.narrow(1, T - 1, 1);
  x = kernels::rms_norm(x, norm_, config_.rms_norm_eps);
  return kernels::linear_logits(x, lm_head_);  // fp32
}

at::Tensor LlamaModel::decode_step_static(const at::Tensor& ids, const at::Tensor& pos,
                                          KVCache& cache) const {
  at::Tensor x = at::embedding(embed_tokens_, ids);  // [B, 1, H]
  // One mask for all layers: key slot j is visible iff j <= pos.
  at::Tensor mask = at::arange(cache.max_len, pos.options()).le(pos).view({1, 1, 1, cache.max_len});
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    if (specs_[l].skip) continue;
    x = block(l, x, pos, &cache, 0, &mask, nullptr, cache.max_len);
  }
  x = kernels::rms_norm(x, norm_, config_.rms_norm_eps);
  return kernels::linear_logits(x, lm_head_);  // fp32; callers argmax on device
}

std::map<std::string, at::Tensor> LlamaModel::state_dict() const {
  std::map<std::string, at::Tensor> sd;
  sd["model.embed_tokens.weight"] = embed_tokens_;
  sd["model.norm.weight"] = norm_;
  if (!config_.tie_word_embeddings) sd["lm_head.weight"] = lm_head_;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = specs_[l];
    if (s.skip) continue;
    const LayerWeights& w = layers_[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    sd[p + "input_layernorm.weight"] = w.input_layernorm;
    sd[p + "post_attention_layernorm.weight"] = w.post_attention_layernorm;
    for (int slot = 0; slot < kNumSlots; ++slot) {
      const LinearSlot ls = static_cast<LinearSlot>(slot);
      const quant::PackedWeight& pw = w.linear(ls).packed();
      int64_t row = 0;
      for (const auto& [name, rows, cols] : linear_parts(s, config_.hidden_size, ls)) {
        sd[p + name + ".weight"] = pw.data.narrow(0, row, rows);
        if (pw.scale.defined()) {
          sd[p + name + ".weight_scale"] = pw.scale.narrow(0, row, rows);
          if (pw.zero.defined()) sd[p + name + ".weight_zero"] = pw.zero.narrow(0, row, rows);
        }
        row += rows;
      }
    }
  }
  return sd;
}

int64_t LlamaModel::num_parameters() const {
  const int64_t H = config_.hidden_size;
  int64_t n = config_.vocab_size * H * (config_.tie_word_embeddings ? 1 : 2) + H;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (specs_[l].skip) continue;
    n += 2 * H;
    for (int slot = 0; slot < kNumSlots; ++slot) {
      const quant::QuantLinear& q = layers_[l].linear(static_cast<LinearSlot>(slot));
      n += q.out_features() * q.in_features();
    }
  }
  return n;
}

void LlamaModel::set_linear(int64_t layer, LinearSlot slot, quant::QuantLinear lin) {
  TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()) && !specs_[layer].skip,
              "set_linear: layer ", layer, " does not exist or is skipped");
  quant::QuantLinear& cur = layers_[layer].linear(slot);
  TORCH_CHECK(lin.out_features() == cur.out_features() && lin.in_features() == cur.in_features(),
              "set_linear: expected a [", cur.out_features(), " x ", cur.in_features(),
              "] linear, got [", lin.out_features(), " x ", lin.in_features(), "]");
  specs_[layer].format_of(static_cast<int>(slot)) = lin.format().name;
  cur = std::move(lin);
}

const quant::QuantLinear& LlamaModel::linear(int64_t layer, LinearSlot slot) const {
  TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()) && !specs_[layer].skip,
              "linear: layer ", layer, " does not exist or is skipped");
  return layers_[layer].linear(slot);
}

int64_t LlamaModel::weight_bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : state_dict()) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

}  // namespace jointnas::model
