// Activation-based importance and the function-preserving permutation (see importance.h and
// docs/importance.md). Estimators after Minitron (Muralidharan et al., "Compact Language Models
// via Pruning and Knowledge Distillation", 2024, Sec. 2.2: mean absolute activations over the
// calibration tokens) and ShortGPT's block influence (Men et al., 2024, Eq. 1: 1 - cos between a
// block's input and output).
#include "jointnas/compress/importance.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"

namespace jointnas::compress {
namespace {

using model::LinearSlot;

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

at::Tensor index_tensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
}

// Per-layer sums over tokens (fp64, on the model's device) of one forward pass after another.
struct LayerSums {
  at::Tensor head_norm;  // [nh]  sum_t ||o_in_t[head]||_2
  at::Tensor v_abs;      // [nh, hd]  sum_t |o_in_t[h*hd + e]|
  at::Tensor neuron_abs; // [I]  sum_t |down_in_t|
  double influence = 0;  // sum_t 1 - cos(block in, block out)
};

// Sum over every axis but the last of |x| in fp32, accumulated into fp64 `acc` [K].
void add_abs_sum(at::Tensor& acc, const at::Tensor& x) {
  const at::Tensor s = x.to(at::kFloat).abs().reshape({-1, x.size(-1)}).sum(0).to(at::kDouble);
  acc = acc.defined() ? acc + s : s;
}

// ---- JSON ------------------------------------------------------------------------------------

Json ranking_json(const Ranking& r) { return Json{{"perm", r.perm}, {"score", r.score}}; }

const Json& member(const Json& j, const char* key, const std::string& where,
                   const std::string& src) {
  JNAS_CHECK_IO(j.is_object() && j.contains(key), "{}: {}: missing key '{}'", src, where, key);
  return j.at(key);
}

// A permutation of 0..n-1 (n = the list's length), each entry checked: untrusted input indexes
// tensors with these.
std::vector<int64_t> read_perm(const Json& j, const std::string& where, const std::string& src) {
  JNAS_CHECK_IO(j.is_array(), "{}: {} must be a list of indices", src, where);
  const int64_t n = static_cast<int64_t>(j.size());
  std::vector<int64_t> p;
  p.reserve(j.size());
  std::vector<char> seen(j.size(), 0);
  for (const Json& e : j) {
    JNAS_CHECK_IO(e.is_number_integer(), "{}: {}: entry {} is not an integer", src, where,
                  e.dump());
    const int64_t v = e.get<int64_t>();
    JNAS_CHECK_IO(v >= 0 && v < n, "{}: {}: index {} out of range [0, {})", src, where, v, n);
    JNAS_CHECK_IO(!seen[static_cast<size_t>(v)],
                  "{}: {}: index {} appears twice (expected a permutation of 0..{})", src, where,
                  v, n - 1);
    seen[static_cast<size_t>(v)] = 1;
    p.push_back(v);
  }
  return p;
}

std::vector<double> read_numbers(const Json& j, const std::string& where, const std::string& src) {
  JNAS_CHECK_IO(j.is_array(), "{}: {} must be a list of numbers", src, where);
  std::vector<double> v;
  v.reserve(j.size());
  for (const Json& e : j) {
    JNAS_CHECK_IO(e.is_number(), "{}: {}: entry {} is not a number", src, where, e.dump());
    v.push_back(e.get<double>());
  }
  return v;
}

Ranking read_ranking(const Json& j, const std::string& where, const std::string& src) {
  Ranking r;
  r.perm = read_perm(member(j, "perm", where, src), where + ".perm", src);
  r.score = read_numbers(member(j, "score", where, src), where + ".score", src);
  JNAS_CHECK_IO(r.score.size() == r.perm.size(), "{}: {}: {} scores for {} perm entries", src,
                where, r.score.size(), r.perm.size());
  return r;
}

void check_len(size_t got, int64_t want, const std::string& what, const std::string& src) {
  JNAS_CHECK_IO(static_cast<int64_t>(got) == want,
                "{}: {} has {} entries, the model needs {} (importance of another model?)", src,
                what, got, want);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Ranking rank_descending(const std::vector<double>& score) {
  for (size_t i = 0; i < score.size(); ++i) {
    // NaN would break the strict weak ordering of the sort (undefined behaviour, not just a bad
    // ranking).
    if (!std::isfinite(score[i])) {
      throw Error(fmt::format("importance score {} of {} is not finite ({})", i, score.size(),
                              score[i]),
                  "the model produced NaN/Inf activations on the calibration text; check it "
                  "with `jointnas eval ppl`");
    }
  }
  Ranking r;
  r.perm.resize(score.size());
  std::iota(r.perm.begin(), r.perm.end(), 0);
  std::stable_sort(r.perm.begin(), r.perm.end(), [&](int64_t a, int64_t b) {
    return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)];
  });
  r.score.reserve(score.size());
  for (int64_t i : r.perm) r.score.push_back(score[static_cast<size_t>(i)]);
  return r;
}

Json Importance::to_json() const {
  Json layers_j = Json::array();
  for (const LayerImportance& li : layers) {
    Json v = Json::array();
    for (const Ranking& r : li.v_dims) v.push_back(ranking_json(r));
    layers_j.push_back(
        {{"kv_groups", ranking_json(li.kv_groups)}, {"v_dims", v}, {"neurons", ranking_json(li.neurons)}});
  }
  return Json{{"format_version", kFormatVersion},
              {"source", source},
              {"calibration",
               {{"file", calibration.file},
                {"windows", calibration.windows},
                {"seq_len", calibration.seq_len},
                {"seed", calibration.seed},
                {"tokens", calibration.tokens}}},
              {"block_influence", block_influence},
              {"block_rank", block_rank},
              {"hidden", ranking_json(hidden)},
              {"layers", layers_j}};
}

Importance Importance::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_IO(j.is_object(), "{}: expected an importance object", src);
  const auto version = get_int(j, "format_version", src);
  JNAS_CHECK_IO(version && *version == kFormatVersion,
                "{}: format_version must be {} (written by `jointnas importance`)", src,
                kFormatVersion);
  Importance imp;
  imp.source = get_string(j, "source", src).value_or("");
  if (j.contains("calibration")) {
    const Json& c = j.at("calibration");
    JNAS_CHECK_IO(c.is_object(), "{}: calibration must be an object", src);
    const std::string s = src + " calibration";
    imp.calibration.file = get_string(c, "file", s).value_or("");
    imp.calibration.windows = get_int(c, "windows", s).value_or(0);
    imp.calibration.seq_len = get_int(c, "seq_len", s).value_or(0);
    imp.calibration.seed = static_cast<uint64_t>(get_int(c, "seed", s).value_or(0));
    imp.calibration.tokens = get_int(c, "tokens", s).value_or(0);
  }
  imp.block_influence = read_numbers(member(j, "block_influence", "top level", src), "block_influence", src);
  imp.block_rank = read_perm(member(j, "block_rank", "top level", src), "block_rank", src);
  imp.hidden = read_ranking(member(j, "hidden", "top level", src), "hidden", src);
  const Json& ls = member(j, "layers", "top level", src);
  JNAS_CHECK_IO(ls.is_array(), "{}: layers must be a list (one object per layer)", src);
  const size_t L = ls.size();
  JNAS_CHECK_IO(imp.block_influence.size() == L && imp.block_rank.size() == L,
                "{}: {} layers but {} block_influence and {} block_rank entries", src, L,
                imp.block_influence.size(), imp.block_rank.size());
  for (size_t l = 0; l < L; ++l) {
    const std::string w = fmt::format("layers[{}]", l);
    LayerImportance li;
    li.kv_groups = read_ranking(member(ls[l], "kv_groups", w, src), w + ".kv_groups", src);
    const Json& v = member(ls[l], "v_dims", w, src);
    JNAS_CHECK_IO(v.is_array() && v.size() == li.kv_groups.perm.size(),
                  "{}: {}.v_dims must be a list of one ranking per KV group ({})", src, w,
                  li.kv_groups.perm.size());
    for (size_t g = 0; g < v.size(); ++g) {
      li.v_dims.push_back(read_ranking(v[g], fmt::format("{}.v_dims[{}]", w, g), src));
      JNAS_CHECK_IO(li.v_dims.back().perm.size() == li.v_dims.front().perm.size(),
                    "{}: {}.v_dims: every KV group has the same head_dim", src, w);
    }
    li.neurons = read_ranking(member(ls[l], "neurons", w, src), w + ".neurons", src);
    imp.layers.push_back(std::move(li));
  }
  return imp;
}

void Importance::check_shapes(const model::LlamaConfig& config, const std::string& src) const {
  const std::vector<model::LayerSpec> specs = model::dense_layer_specs(config);
  const int64_t L = static_cast<int64_t>(specs.size());
  check_len(layers.size(), L, "layers", src);
  check_len(block_influence.size(), L, "block_influence", src);
  check_len(block_rank.size(), L, "block_rank", src);
  check_len(hidden.perm.size(), config.hidden_size, "hidden.perm", src);
  for (int64_t l = 0; l < L; ++l) {
    const model::LayerSpec& s = specs[static_cast<size_t>(l)];
    const LayerImportance& li = layers[static_cast<size_t>(l)];
    const std::string w = fmt::format("layers[{}]", l);
    const int64_t nkv = s.skip ? 0 : s.num_key_value_heads;
    check_len(li.kv_groups.perm.size(), nkv, w + ".kv_groups.perm", src);
    check_len(li.v_dims.size(), nkv, w + ".v_dims", src);
    for (const Ranking& r : li.v_dims) check_len(r.perm.size(), s.head_dim, w + ".v_dims[].perm", src);
    check_len(li.neurons.perm.size(), s.skip ? 0 : s.intermediate_size, w + ".neurons.perm", src);
  }
}

Importance compute_importance(const model::LlamaModel& m, const at::Tensor& windows,
                              const ImportanceOptions& opts,
                              const std::function<void(int64_t, int64_t)>& progress) {
  JNAS_CHECK_CONFIG(windows.defined() && windows.dim() == 2 && windows.size(0) > 0 &&
                        windows.size(1) > 0,
                    "importance needs calibration windows [n, T] with n, T > 0");
  JNAS_CHECK_CONFIG(opts.batch > 0, "importance batch must be > 0, got {}", opts.batch);
  const std::vector<model::LayerSpec>& specs = m.specs();
  const int64_t L = static_cast<int64_t>(specs.size());
  const int64_t n = windows.size(0), T = windows.size(1);
  const double tokens = static_cast<double>(n * T);

  std::vector<LayerSums> sums(static_cast<size_t>(L));
  at::Tensor hidden_abs;  // [H] sum over layers and tokens of |qkv input| + |gate_up input|
  int64_t last = -1;      // the last block that runs: the forward stops there (no head needed)
  for (int64_t l = 0; l < L; ++l) {
    if (!specs[static_cast<size_t>(l)].skip) last = l;
  }
  JNAS_CHECK_CONFIG(last >= 0, "importance: every layer of the model is skipped");

  model::ForwardHooks hooks;
  hooks.stop_after_layer = last;
  hooks.on_linear_input = [&](int64_t l, LinearSlot slot, const at::Tensor& x) {
    LayerSums& s = sums[static_cast<size_t>(l)];
    const model::LayerSpec& sp = specs[static_cast<size_t>(l)];
    switch (slot) {
      case LinearSlot::kQkv:
      case LinearSlot::kGateUp:  // the RMSNorm outputs: one [H] statistic per hidden channel
        add_abs_sum(hidden_abs, x);
        break;
      case LinearSlot::kO: {  // attention output per head, [B, T, nh * hd] -> [B*T, nh, hd]
        const at::Tensor o = x.to(at::kFloat).reshape({-1, sp.num_attention_heads, sp.head_dim});
        const at::Tensor hn = o.norm(2, {2}).sum(0).to(at::kDouble);      // [nh]
        const at::Tensor va = o.abs().sum(0).to(at::kDouble);             // [nh, hd]
        s.head_norm = s.head_norm.defined() ? s.head_norm + hn : hn;
        s.v_abs = s.v_abs.defined() ? s.v_abs + va : va;
        break;
      }
      case LinearSlot::kDown:
        add_abs_sum(s.neuron_abs, x);
        break;
    }
  };
  hooks.on_block = [&](int64_t l, const at::Tensor& in, const at::Tensor& out) {
    // fp64: for a block that barely changes the stream 1 - cos is small, and fp32 would leave
    // only a few significant digits of it.
    const at::Tensor c = at::cosine_similarity(in.to(at::kDouble), out.to(at::kDouble), -1);
    sums[static_cast<size_t>(l)].influence += (1.0 - c).sum().item<double>();
  };

  for (int64_t b = 0; b < n; b += opts.batch) {
    m.forward(windows.narrow(0, b, std::min(opts.batch, n - b)), nullptr, false, &hooks);
    if (progress) progress(std::min(b + opts.batch, n), n);
  }

  Importance imp;
  imp.calibration.windows = n;
  imp.calibration.seq_len = T;
  imp.calibration.tokens = n * T;
  std::vector<double> hidden_score = to_vector(hidden_abs / tokens);
  imp.hidden = rank_descending(hidden_score);
  for (int64_t l = 0; l < L; ++l) {
    const model::LayerSpec& sp = specs[static_cast<size_t>(l)];
    LayerSums& s = sums[static_cast<size_t>(l)];
    imp.block_influence.push_back(s.influence / tokens);  // skipped: 0, the identity
    LayerImportance li;
    if (!sp.skip) {
      const int64_t nkv = sp.num_key_value_heads, g = sp.num_attention_heads / nkv;
      // HF order: q head h belongs to kv head h / g, so the groups are contiguous head blocks.
      li.kv_groups = rank_descending(to_vector(s.head_norm.reshape({nkv, g}).sum(1) / tokens));
      const at::Tensor v = s.v_abs.reshape({nkv, g, sp.head_dim}).mean(1) / tokens;  // [nkv, hd]
      for (int64_t j : li.kv_groups.perm) li.v_dims.push_back(rank_descending(to_vector(v[j])));
      li.neurons = rank_descending(to_vector(s.neuron_abs / tokens));
    }
    imp.layers.push_back(std::move(li));
  }
  imp.block_rank = rank_descending(imp.block_influence).perm;
  return imp;
}

void check_permutable(const model::Checkpoint& ckpt) {
  for (const auto& [name, t] : ckpt.tensors) {
    JNAS_CHECK_CONFIG(at::isFloatingType(t.scalar_type()) && !ends_with(name, ".weight_scale") &&
                          !ends_with(name, ".weight_zero"),
                      "importance permutes float checkpoints only; {} holds packed tensor {} ({}). "
                      "fix: compute importance on the model before `jointnas quantize`",
                      ckpt.config_source, name, c10::toString(t.scalar_type()));
  }
  const std::vector<model::LayerSpec> specs = model::dense_layer_specs(ckpt.config);
  for (size_t l = 0; l < specs.size(); ++l) {
    for (int s = 0; s < model::kNumSlots; ++s) {
      // Group-wise formats quantize along the input axis at load: permuted columns would land in
      // other groups, so the loaded model would no longer compute the same function.
      JNAS_CHECK_CONFIG(!quant::find_format(specs[l].format_of(s)).quantized(),
                        "importance permutes float checkpoints only; layer {} of {} is planned as "
                        "{}. fix: compute importance on the unquantized model",
                        l, ckpt.config_source, specs[l].format_of(s));
    }
  }
}

model::Checkpoint permute_checkpoint(const model::Checkpoint& ckpt, const Importance& imp) {
  const model::LlamaConfig& c = ckpt.config;
  check_permutable(ckpt);
  const std::vector<model::LayerSpec> specs = model::dense_layer_specs(c);
  imp.check_shapes(c, "importance for " + ckpt.config_source);

  model::Checkpoint out = ckpt;  // unknown tensors (e.g. rotary inv_freq buffers) are kept as is
  auto get = [&](const std::string& name) -> const at::Tensor& {
    const auto it = ckpt.tensors.find(name);
    JNAS_CHECK_IO(it != ckpt.tensors.end(), "{}: missing tensor {}", ckpt.config_source, name);
    return it->second;
  };
  // Every permuted tensor is a fresh contiguous copy (index_select), never a write into the
  // read-only mapped views.
  auto put = [&](const std::string& name, at::Tensor t) { out.tensors[name] = std::move(t); };
  const at::Tensor P = index_tensor(imp.hidden.perm);  // hidden: new channel c <- old P[c]

  // The residual stream is permuted everywhere at once: embeddings and head columns, every norm
  // weight (RMSNorm's mean of squares does not depend on the channel order), the input columns of
  // the linears that read the stream and the output rows of those that write it.
  put("model.embed_tokens.weight", get("model.embed_tokens.weight").index_select(1, P));
  if (ckpt.tensors.count("lm_head.weight") != 0) {  // absent when tied: the head is the embedding
    put("lm_head.weight", get("lm_head.weight").index_select(1, P));
  }
  put("model.norm.weight", get("model.norm.weight").index_select(0, P));

  for (size_t l = 0; l < specs.size(); ++l) {
    const model::LayerSpec& s = specs[l];
    if (s.skip) continue;
    const LayerImportance& li = imp.layers[l];
    const int64_t nkv = s.num_key_value_heads, hd = s.head_dim, g = s.num_attention_heads / nkv;
    const std::vector<int64_t>& G = li.kv_groups.perm;  // new group j <- old group G[j]
    // Row indices of the new k/v/q rows and o columns in the old tensors. Query heads move with
    // their KV head, in order; q/k rows inside a head stay (RoPE pairs dims d and d + hd/2 to one
    // frequency); v dims move with li.v_dims[j] (new group order), and so do the o_proj columns
    // of every query head of the group, which read exactly those v dims.
    std::vector<int64_t> k_rows, v_rows, q_rows, o_cols;
    for (int64_t j = 0; j < nkv; ++j) {
      const std::vector<int64_t>& V = li.v_dims[static_cast<size_t>(j)].perm;
      const int64_t old_kv = G[static_cast<size_t>(j)];
      for (int64_t e = 0; e < hd; ++e) {
        k_rows.push_back(old_kv * hd + e);
        v_rows.push_back(old_kv * hd + V[static_cast<size_t>(e)]);
      }
      for (int64_t i = 0; i < g; ++i) {
        const int64_t old_head = old_kv * g + i;
        for (int64_t e = 0; e < hd; ++e) {
          q_rows.push_back(old_head * hd + e);
          o_cols.push_back(old_head * hd + V[static_cast<size_t>(e)]);
        }
      }
    }
    const at::Tensor N = index_tensor(li.neurons.perm);
    const std::string p = fmt::format("model.layers.{}.", l);
    auto rows_cols = [&](const std::string& name, const at::Tensor& rows, const at::Tensor& cols) {
      put(p + name, get(p + name).index_select(0, rows).index_select(1, cols));
    };
    put(p + "input_layernorm.weight", get(p + "input_layernorm.weight").index_select(0, P));
    put(p + "post_attention_layernorm.weight",
        get(p + "post_attention_layernorm.weight").index_select(0, P));
    rows_cols("self_attn.q_proj.weight", index_tensor(q_rows), P);
    rows_cols("self_attn.k_proj.weight", index_tensor(k_rows), P);
    rows_cols("self_attn.v_proj.weight", index_tensor(v_rows), P);
    rows_cols("self_attn.o_proj.weight", P, index_tensor(o_cols));
    rows_cols("mlp.gate_proj.weight", N, P);
    rows_cols("mlp.up_proj.weight", N, P);
    rows_cols("mlp.down_proj.weight", P, N);
  }
  return out;
}

std::vector<int64_t> load_block_rank(const std::string& path, int64_t layers) {
  const Json j = read_json_file(path);
  JNAS_CHECK_IO(j.contains("block_rank") && j["block_rank"].is_array(), "{}: no 'block_rank' list", path);
  std::vector<int64_t> rank_of(static_cast<size_t>(layers), -1);
  JNAS_CHECK_IO(static_cast<int64_t>(j["block_rank"].size()) == layers, "{}: block_rank lists {} blocks, the model has {}",
                path, j["block_rank"].size(), layers);
  for (size_t r = 0; r < j["block_rank"].size(); ++r) {
    const Json& v = j["block_rank"][r];
    JNAS_CHECK_IO(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < layers &&
                      rank_of[v.get<size_t>()] < 0,
                  "{}: block_rank must be a permutation of 0..{}", path, layers - 1);
    rank_of[v.get<size_t>()] = static_cast<int64_t>(r);
  }
  return rank_of;
}

}  // namespace jointnas::compress
