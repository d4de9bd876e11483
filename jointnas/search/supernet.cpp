#include "jointnas/search/supernet.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/core/error.h"
#include "jointnas/model/rope.h"
#include "jointnas/quant/pack.h"
#include "jointnas/quant/quantize.h"
#include "jointnas/search/mixed_linear.h"

namespace jointnas::search {
namespace {

constexpr int kQkv = 0, kO = 1, kGateUp = 2, kDown = 3;

// Indicator [choices, width]: row i is 1 on [0, choice_i) (a prefix of `per` units of `unit`).
at::Tensor prefix_indicator(const std::vector<int64_t>& choices, int64_t width) {
  at::Tensor ind = at::zeros({static_cast<int64_t>(choices.size()), width}, at::kFloat);
  for (size_t i = 0; i < choices.size(); ++i) ind[i].narrow(0, 0, choices[i]).fill_(1.0);
  return ind;
}

at::Tensor one_hot_vec(int64_t n, int64_t i, c10::Device dev, at::ScalarType dt) {
  at::Tensor t = at::zeros({n}, at::TensorOptions().dtype(dt).device(dev));
  t[i] = 1.0;
  return t;
}

// The probabilities of the decisions one linear's masks depend on.
struct LayerProbsView {
  at::Tensor hidden, groups, head_dim, inter;
};

}  // namespace

Mixing parse_mixing(const std::string& n) {
  if (n == "loop") return Mixing::kLoop;
  if (n == "dense_mask") return Mixing::kDenseMask;
  if (n == "factorized") return Mixing::kFactorized;
  if (n == "plain") return Mixing::kPlain;
  throw ConfigError(fmt::format("unknown mixing '{}' (loop, dense_mask, factorized, plain)", n));
}

const char* mixing_name(Mixing m) {
  switch (m) {
    case Mixing::kLoop: return "loop";
    case Mixing::kDenseMask: return "dense_mask";
    case Mixing::kPlain: return "plain";
    default: return "factorized";
  }
}

Relaxation parse_relaxation(const std::string& n) {
  if (n == "softmax") return Relaxation::kSoftmax;
  if (n == "gumbel") return Relaxation::kGumbel;
  if (n == "hard") return Relaxation::kHard;
  throw ConfigError(fmt::format("unknown relaxation '{}' (softmax, gumbel, hard)", n));
}

struct Supernet::Impl {
  model::LlamaConfig config;
  SearchSpace space;
  std::vector<int64_t> block_rank;
  SupernetOptions opts;
  int64_t H = 0, I = 0, hd = 0, nh = 0, nkv = 0, g = 1;

  at::Tensor embed, lm_head, norm;
  struct Layer {
    at::Tensor ln1, ln2;
    std::array<MixedWeight, 4> w;                   // qkv, o, gate_up, down
    std::array<at::Tensor, 4> lora_a, lora_b;       // [r, K], [N, r]
    at::Tensor arch_groups, arch_hd, arch_inter;    // logits
    std::array<at::Tensor, 4> arch_fmt;
    at::Tensor ind_groups, ind_pairs, ind_vdims, ind_inter;  // prefix indicators (device)
  };
  std::vector<Layer> layers;
  at::Tensor arch_hidden, arch_depth;
  at::Tensor ind_hidden, ind_depth;  // [n_h, H], [n_D, L] (1 where depth_i > rank(l))
  std::shared_ptr<const model::RopeTables> rope;  // cos / sin [P, hd] of the full head, grown on use
  // dense_mask: stored binary masks per (slot kind, decision, choice) at weight shape.
  std::map<std::string, at::Tensor> mask_stacks;

  // Probabilities and masks: fp32, or fp64 for an fp64 supernet (tests: no fp32 rounding at all).
  at::ScalarType prob_dtype() const { return opts.dtype == at::kDouble ? at::kDouble : at::kFloat; }
  at::TensorOptions fopts() const { return at::TensorOptions().dtype(prob_dtype()).device(opts.device); }

  // A distribution with f(logits, index) for every decision, in ArchDist's order (hidden, depth,
  // then per layer groups, head size, MLP width, formats by slot); `index` is the matching index of
  // `a`, or nullptr without one. The order is the Gumbel noise's: it must not change.
  ArchDist map_decisions(const Arch* a, const std::function<at::Tensor(const at::Tensor&, const int64_t*)>& f) const {
    ArchDist d;
    d.hidden = f(arch_hidden, a ? &a->hidden : nullptr);
    d.depth = f(arch_depth, a ? &a->depth : nullptr);
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto& L = layers[l];
      d.kv_groups.push_back(f(L.arch_groups, a ? &a->kv_groups.at(l) : nullptr));
      d.head_dims.push_back(f(L.arch_hd, a ? &a->head_dims.at(l) : nullptr));
      d.intermediate.push_back(f(L.arch_inter, a ? &a->intermediate.at(l) : nullptr));
      std::array<at::Tensor, kNumFormatSlots> fm;
      for (int k = 0; k < kNumFormatSlots; ++k) fm[k] = f(L.arch_fmt[k], a ? &a->formats.at(l)[k] : nullptr);
      d.formats.push_back(fm);
    }
    return d;
  }

  // ---- masks -----------------------------------------------------------------------------
  // a (rows) and b (columns) of a slot's expected mask for the given decision probabilities.
  std::pair<at::Tensor, at::Tensor> slot_masks(int64_t l, int slot, const LayerProbsView& pv) const {
    const Layer& L = layers[l];
    at::Tensor mh = at::matmul(pv.hidden, ind_hidden);            // [H]
    at::Tensor gm = at::matmul(pv.groups, L.ind_groups);          // [nkv]
    at::Tensor qh = gm.repeat_interleave(g);                      // [nh]
    at::Tensor pair = at::matmul(pv.head_dim, L.ind_pairs);       // [hd / 2]
    at::Tensor qk = at::cat({pair, pair});                        // rotate-half layout
    at::Tensor vd = at::matmul(pv.head_dim, L.ind_vdims);         // [hd]
    at::Tensor nm = at::matmul(pv.inter, L.ind_inter);            // [I]
    switch (slot) {
      case kQkv:
        return {at::cat({at::outer(qh, qk).flatten(), at::outer(gm, qk).flatten(),
                         at::outer(gm, vd).flatten()}),
                mh};
      case kO: return {mh, at::outer(qh, vd).flatten()};
      case kGateUp: return {at::cat({nm, nm}), mh};
      default: return {mh, nm};
    }
  }

  // Which decisions (0 hidden, 1 groups, 2 head_dim, 3 inter) shape the rows / columns of a slot.
  static std::vector<int> out_decisions(int slot) {
    switch (slot) {
      case kQkv: return {1, 2};
      case kO: return {0};
      case kGateUp: return {3};
      default: return {0};
    }
  }
  static std::vector<int> in_decisions(int slot) {
    switch (slot) {
      case kQkv: return {0};
      case kO: return {1, 2};
      case kGateUp: return {0};
      default: return {3};
    }
  }
  static const at::Tensor& decision(const LayerProbsView& v, int d) {
    return decision(const_cast<LayerProbsView&>(v), d);
  }
  static at::Tensor& decision(LayerProbsView& v, int d) {
    switch (d) {
      case 0: return v.hidden;
      case 1: return v.groups;
      case 2: return v.head_dim;
      default: return v.inter;
    }
  }
  // The view where every decision takes its largest choice (masks of ones).
  LayerProbsView full_view(int64_t l) const {
    const LayerChoices& lc = space.layers[l];
    auto last = [&](size_t n) { return one_hot_vec(static_cast<int64_t>(n), static_cast<int64_t>(n) - 1, opts.device, prob_dtype()); };
    return {last(space.hidden.size()), last(lc.kv_groups.size()), last(lc.head_dims.size()),
            last(lc.intermediate.size())};
  }

  // ---- the three mixing implementations --------------------------------------------------
  at::Tensor linear(int64_t l, int slot, const at::Tensor& x, const LayerProbsView& pv,
                    const at::Tensor& pf, const at::Tensor& keep) const {
    const Layer& L = layers[l];
    const MixedWeight& mw = L.w[slot];
    const bool gated = slot == kO || slot == kDown;
    at::Tensor y;
    if (opts.mixing == Mixing::kPlain) {
      y = at::matmul(x, mw.weight.t());
      if (L.lora_a[slot].defined()) {
        const double s = opts.lora_alpha / static_cast<double>(opts.lora_rank);
        y = y + at::matmul(at::matmul(x, L.lora_a[slot].t()), L.lora_b[slot].t()) * s;
      }
      return y;
    }
    if (opts.mixing == Mixing::kFactorized) {
      auto [a, b] = slot_masks(l, slot, pv);
      if (gated) a = a * keep;
      y = mixed_linear_factorized(x, mw, pf, a, b);
      if (L.lora_a[slot].defined()) y = y + lora(l, slot, x, a, b);
      return y;
    }
    if (opts.mixing == Mixing::kLoop) {
      y = loop_linear(l, slot, x, pv, pf);
    } else {
      y = dense_mask_linear(l, slot, x, pv, pf);
    }
    if (L.lora_a[slot].defined()) {
      auto [a, b] = slot_masks(l, slot, pv);
      y = y + lora(l, slot, x, a, b);
    }
    return gated ? y * keep.to(y.scalar_type()) : y;
  }

  at::Tensor lora(int64_t l, int slot, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) const {
    const Layer& L = layers[l];
    const double s = opts.lora_alpha / static_cast<double>(opts.lora_rank);
    at::Tensor A = L.lora_a[slot] * b.to(x.scalar_type()).unsqueeze(0);
    at::Tensor B = L.lora_b[slot] * a.to(x.scalar_type()).unsqueeze(1);
    return at::matmul(at::matmul(x, A.t()), B.t()) * s;
  }

  // Enumerates the joint choices of some decisions: (probability, view with those one-hot).
  std::vector<std::pair<at::Tensor, LayerProbsView>> candidates(int64_t l, const std::vector<int>& ds,
                                                                const LayerProbsView& pv) const {
    std::vector<std::pair<at::Tensor, LayerProbsView>> out{{at::ones({}, fopts()), full_view(l)}};
    for (int d : ds) {
      std::vector<std::pair<at::Tensor, LayerProbsView>> next;
      LayerProbsView src = pv;
      const int64_t n = decision(src, d).numel();
      for (auto& [p, v] : out) {
        for (int64_t c = 0; c < n; ++c) {
          LayerProbsView w = v;
          decision(w, d) = one_hot_vec(n, c, opts.device, prob_dtype());
          next.emplace_back(p * decision(src, d)[c], w);
        }
      }
      out = std::move(next);
    }
    return out;
  }

  // loop: for every format and every (output, input) candidate, slice the fake-quantized weight
  // and the input, multiply, pad back and accumulate with the candidate's probability.
  at::Tensor loop_linear(int64_t l, int slot, const at::Tensor& x, const LayerProbsView& pv,
                         const at::Tensor& pf) const {
    const MixedWeight& mw = layers[l].w[slot];
    const int64_t N = mw.weight.size(0);
    auto outs = candidates(l, out_decisions(slot), pv);
    auto ins = candidates(l, in_decisions(slot), pv);
    std::vector<at::Tensor> rows, cols;
    for (auto& [p, v] : outs) rows.push_back(slot_masks(l, slot, v).first.nonzero().flatten());
    for (auto& [p, v] : ins) cols.push_back(slot_masks(l, slot, v).second.nonzero().flatten());
    auto shape = x.sizes().vec();
    shape.back() = N;
    at::Tensor y = at::zeros(shape, x.options());
    for (size_t f = 0; f < mw.formats.size(); ++f) {
      at::Tensor wf = quant::fake_quant(mw.weight, *mw.formats[f], mw.groups[f]);
      at::Tensor xf = quant::fake_quant_act(x, *mw.formats[f]);
      for (size_t o = 0; o < outs.size(); ++o) {
        for (size_t i = 0; i < ins.size(); ++i) {
          at::Tensor w_sub = wf.index_select(0, rows[o]).index_select(1, cols[i]);
          at::Tensor y_sub = at::matmul(xf.index_select(-1, cols[i]), w_sub.t());
          at::Tensor prob = (pf[f] * outs[o].first * ins[i].first).to(x.scalar_type());
          y = y.index_add(-1, rows[o], y_sub * prob);
        }
      }
    }
    return y;
  }

  // dense_mask: E[M] = prod over decisions of sum_c p_c M_c with binary masks M_c stored at the
  // weight's shape (shared by layers with the same choices), then one matmul per format.
  const at::Tensor& stack(int64_t l, int slot, int d) {
    const LayerChoices& lc = space.layers[l];
    const std::vector<int64_t>& ch = d == 0 ? space.hidden : d == 1 ? lc.kv_groups
                                   : d == 2 ? lc.head_dims  : lc.intermediate;
    const std::string key = fmt::format("{}:{}:{}", slot, d, fmt::join(ch, ","));
    auto it = mask_stacks.find(key);
    if (it != mask_stacks.end()) return it->second;
    std::vector<at::Tensor> ms;
    for (int64_t c = 0; c < static_cast<int64_t>(ch.size()); ++c) {
      LayerProbsView v = full_view(l);
      decision(v, d) = one_hot_vec(static_cast<int64_t>(ch.size()), c, opts.device, prob_dtype());
      auto [a, b] = slot_masks(l, slot, v);
      ms.push_back(at::outer(a, b).to(opts.dtype));
    }
    return mask_stacks[key] = at::stack(ms);
  }
  at::Tensor dense_mask_linear(int64_t l, int slot, const at::Tensor& x, const LayerProbsView& pv,
                               const at::Tensor& pf) const {
    auto* self = const_cast<Impl*>(this);  // the stacks are a cache
    const MixedWeight& mw = layers[l].w[slot];
    at::Tensor em;
    for (int d : out_decisions(slot)) {
      at::Tensor e = at::tensordot(decision(pv, d).to(opts.dtype),
                                   self->stack(l, slot, d), {0}, {0});
      em = em.defined() ? em * e : e;
    }
    for (int d : in_decisions(slot)) {
      at::Tensor e = at::tensordot(decision(pv, d).to(opts.dtype),
                                   self->stack(l, slot, d), {0}, {0});
      em = em * e;
    }
    at::Tensor y;
    for (size_t f = 0; f < mw.formats.size(); ++f) {
      at::Tensor wf = quant::fake_quant(mw.weight, *mw.formats[f], mw.groups[f]);
      at::Tensor xf = quant::fake_quant_act(x, *mw.formats[f]);
      at::Tensor t = at::matmul(xf, (em * wf).t()) * pf[f].to(x.scalar_type());
      y = y.defined() ? y + t : t;
    }
    return y;
  }

  // ---- the network -------------------------------------------------------------------------
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& width) const {
    at::Tensor x32 = x.to(at::kFloat);
    at::Tensor var = x32.pow(2).sum(-1, true) / width;
    return w * (x32 * at::rsqrt(var + config.rms_norm_eps)).to(x.scalar_type());
  }

  static at::Tensor rotate_half(const at::Tensor& t) {
    const int64_t half = t.size(-1) / 2;
    return at::cat({-t.narrow(-1, half, half), t.narrow(-1, 0, half)}, -1);
  }

  // The final normed hidden states [B, T, H]. `teacher`: the original model (every linear plain,
  // no LoRA, no quantization, every width and block; `d` only supplies shapes).
  at::Tensor hidden_states(const at::Tensor& ids, const ArchDist& d, bool teacher = false) const {
    const int64_t B = ids.size(0), T = ids.size(1);
    JNAS_CHECK_CONFIG(T <= config.max_position_embeddings, "sequence of {} tokens exceeds max_position_embeddings = {}",
                      T, config.max_position_embeddings);
    at::Tensor dev_ids = ids.to(opts.device, at::kLong);
    // The teacher is the whole original model whatever the space (a restricted space's largest
    // architecture is the sub-network, not the model).
    at::Tensor mh = teacher ? at::ones({H}, fopts()) : at::matmul(d.hidden, ind_hidden);
    at::Tensor width = mh.sum();
    at::Tensor keep = teacher ? at::ones({static_cast<int64_t>(layers.size())}, fopts())
                              : at::matmul(d.depth, ind_depth);  // [L]
    at::Tensor x = at::embedding(embed, dev_ids) * mh.to(opts.dtype);
    const auto [rope_cos, rope_sin] = rope->get(T);  // [P >= T, hd] each
    at::Tensor cos = rope_cos.narrow(0, 0, T).to(opts.dtype), sin = rope_sin.narrow(0, 0, T).to(opts.dtype);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (int64_t l = 0; l < static_cast<int64_t>(layers.size()); ++l) {
      const Layer& L = layers[l];
      LayerProbsView pv{d.hidden, d.kv_groups[l], d.head_dims[l], d.intermediate[l]};
      at::Tensor kl = keep[l];
      at::Tensor h = rms_norm(x, L.ln1, width);
      auto lin = [&](int slot, const at::Tensor& in) {
        return teacher ? at::matmul(in, layers[l].w[slot].weight.t()) : linear(l, slot, in, pv, d.formats[l][slot], kl);
      };
      at::Tensor qkv = lin(kQkv, h);
      at::Tensor q = qkv.narrow(-1, 0, nh * hd).view({B, T, nh, hd}).transpose(1, 2);
      at::Tensor k = qkv.narrow(-1, nh * hd, nkv * hd).view({B, T, nkv, hd}).transpose(1, 2);
      at::Tensor v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).view({B, T, nkv, hd}).transpose(1, 2);
      q = q * cos + rotate_half(q) * sin;
      k = k * cos + rotate_half(k) * sin;
      at::Tensor attn = at::scaled_dot_product_attention(q, k, v, {}, 0.0, T > 1, scale, nh != nkv);
      attn = attn.transpose(1, 2).reshape({B, T, nh * hd});
      x = x + lin(kO, attn);
      h = rms_norm(x, L.ln2, width);
      at::Tensor gu = lin(kGateUp, h);
      at::Tensor act = at::silu(gu.narrow(-1, 0, I)) * gu.narrow(-1, I, I);
      x = x + lin(kDown, act);
    }
    return rms_norm(x, norm, width);
  }
};

// ---- construction ----------------------------------------------------------------------------

Supernet::Supernet(const model::Checkpoint& ckpt, SearchSpace space, std::vector<int64_t> block_rank,
                   SupernetOptions opts, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = ckpt.config;
  m.space = std::move(space);
  m.opts = opts;
  const auto& c = m.config;
  m.H = c.hidden_size, m.I = c.intermediate_size, m.hd = c.head_dim;
  m.nh = c.num_attention_heads, m.nkv = c.num_key_value_heads, m.g = m.nh / m.nkv;
  const int64_t Lc = c.num_hidden_layers;
  JNAS_CHECK_CONFIG(static_cast<int64_t>(m.space.layers.size()) == Lc,
                    "search space has {} layers, the model {}", m.space.layers.size(), Lc);
  JNAS_CHECK_CONFIG(c.layer_specs.empty(), "{}: the supernet starts from a dense float model, this one "
                    "already has per-layer specs", ckpt.config_source);
  if (block_rank.empty()) {
    for (int64_t l = 0; l < Lc; ++l) block_rank.push_back(l);
  }
  JNAS_CHECK_CONFIG(static_cast<int64_t>(block_rank.size()) == Lc, "block_rank has {} entries, the model {} layers",
                    block_rank.size(), Lc);
  m.block_rank = block_rank;
  if (opts.mixing == Mixing::kPlain) m.opts.mixing = Mixing::kFactorized;  // validated below

  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    auto it = ckpt.tensors.find(name);
    JNAS_CHECK_IO(it != ckpt.tensors.end(), "{}: missing tensor '{}'", ckpt.config_source, name);
    JNAS_CHECK_IO(at::isFloatingType(it->second.scalar_type()) && it->second.sizes().vec() == shape,
                  "{}: tensor '{}' must be a float tensor of shape [{}] (the supernet needs the "
                  "unquantized model)", ckpt.config_source, name, fmt::join(shape, ", "));
    return it->second.to(opts.device, opts.dtype).contiguous();
  };
  m.embed = get("model.embed_tokens.weight", {c.vocab_size, m.H});
  m.norm = get("model.norm.weight", {m.H});
  m.lm_head = c.tie_word_embeddings ? m.embed : get("lm_head.weight", {c.vocab_size, m.H});

  auto dev = [&](at::Tensor t) { return t.to(opts.device, m.prob_dtype()); };
  m.ind_hidden = dev(prefix_indicator(m.space.hidden, m.H));
  m.ind_depth = at::zeros({static_cast<int64_t>(m.space.depth.size()), Lc}, at::kFloat);
  for (size_t i = 0; i < m.space.depth.size(); ++i) {
    for (int64_t l = 0; l < Lc; ++l) m.ind_depth[i][l] = block_kept(block_rank, l, m.space.depth[i]) ? 1.0 : 0.0;
  }
  m.ind_depth = dev(m.ind_depth);
  auto logits = [&](size_t n) { return at::zeros({static_cast<int64_t>(n)}, m.fopts()).requires_grad_(true); };
  m.arch_hidden = logits(m.space.hidden.size());
  m.arch_depth = logits(m.space.depth.size());

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (int64_t l = 0; l < Lc; ++l) {
    const LayerChoices& lc = m.space.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    Impl::Layer L;
    L.ln1 = get(p + "input_layernorm.weight", {m.H});
    L.ln2 = get(p + "post_attention_layernorm.weight", {m.H});
    const int64_t qo = m.nh * m.hd, kvo = m.nkv * m.hd;
    std::array<at::Tensor, 4> w = {
        at::cat({get(p + "self_attn.q_proj.weight", {qo, m.H}), get(p + "self_attn.k_proj.weight", {kvo, m.H}),
                 get(p + "self_attn.v_proj.weight", {kvo, m.H})}),
        get(p + "self_attn.o_proj.weight", {m.H, qo}),
        at::cat({get(p + "mlp.gate_proj.weight", {m.I, m.H}), get(p + "mlp.up_proj.weight", {m.I, m.H})}),
        get(p + "mlp.down_proj.weight", {m.H, m.I})};
    for (int s = 0; s < 4; ++s) {
      MixedWeight& mw = L.w[s];
      mw.weight = w[s];
      mw.row_chunk = opts.row_chunk;
      for (const auto& name : lc.formats[s]) {
        mw.formats.push_back(&quant::find_format(name));
        mw.groups.push_back(supernet_group(c, lc, s, name));
      }
      mw.prepare();
      L.arch_fmt[s] = logits(lc.formats[s].size());
      if (opts.lora_rank > 0) {
        // A ~ N(0, 1/K) over its K inputs (the scale of LoRA's usual Kaiming init), so that Adam's
        // steps on B move B A by the same share of the weights at any width. With N(0, 1/rank) a step
        // on ref-17m (K = 384) moved it 7x as far: lr 1e-3 raised the finetune's training loss from
        // its first steps (issue 22, docs/search.md "Recovery").
        L.lora_a[s] = (at::randn({opts.lora_rank, w[s].size(1)}, gen, at::kFloat) /
                       std::sqrt(static_cast<double>(w[s].size(1))))
                          .to(opts.device, opts.dtype).requires_grad_(true);
        L.lora_b[s] = at::zeros({w[s].size(0), opts.lora_rank}, at::TensorOptions().dtype(opts.dtype).device(opts.device))
                          .requires_grad_(true);
      }
    }
    L.arch_groups = logits(lc.kv_groups.size());
    L.arch_hd = logits(lc.head_dims.size());
    L.arch_inter = logits(lc.intermediate.size());
    L.ind_groups = dev(prefix_indicator(lc.kv_groups, m.nkv));
    std::vector<int64_t> pairs;
    for (int64_t d : lc.head_dims) pairs.push_back(d / 2);
    L.ind_pairs = dev(prefix_indicator(pairs, m.hd / 2));
    L.ind_vdims = dev(prefix_indicator(lc.head_dims, m.hd));
    L.ind_inter = dev(prefix_indicator(lc.intermediate, m.I));
    m.layers.push_back(std::move(L));
  }
  // RoPE of the full head (the cut head keeps the first pairs: their frequencies are unchanged).
  // Grown to the positions used (model/rope.h), never to max_position_embeddings up front.
  m.rope = std::make_shared<const model::RopeTables>(m.hd, c.rope.rope_theta, c.rope, c.max_position_embeddings,
                                                     opts.device);
  if (opts.mixing == Mixing::kPlain) set_mixing(Mixing::kPlain);
}

Supernet::~Supernet() = default;
Supernet::Supernet(Supernet&&) noexcept = default;

const SearchSpace& Supernet::space() const { return impl_->space; }
const model::LlamaConfig& Supernet::config() const { return impl_->config; }
const std::vector<int64_t>& Supernet::block_rank() const { return impl_->block_rank; }
Mixing Supernet::mixing() const { return impl_->opts.mixing; }
void Supernet::set_mixing(Mixing m) {
  if (m == Mixing::kPlain) {
    const SearchSpace& s = impl_->space;
    bool single = s.hidden.size() == 1 && s.depth.size() == 1;
    for (const auto& l : s.layers) {
      single = single && l.kv_groups.size() == 1 && l.head_dims.size() == 1 && l.intermediate.size() == 1;
      for (const auto& f : l.formats) single = single && f.size() == 1 && f[0] == "bf16";
    }
    const auto& c = impl_->config;
    single = single && s.hidden[0] == c.hidden_size && s.depth[0] == c.num_hidden_layers &&
             s.layers[0].intermediate[0] == c.intermediate_size && s.layers[0].head_dims[0] == c.head_dim &&
             s.layers[0].kv_groups[0] == c.num_key_value_heads;
    JNAS_CHECK_CONFIG(single, "mixing 'plain' runs the dense model only: the search space must be "
                      "SearchSpace::dense (one architecture, bf16)");
  }
  impl_->opts.mixing = m;
}

std::vector<std::pair<std::string, at::Tensor>> Supernet::named_arch_parameters() const {
  const Impl& m = *impl_;
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto add = [&](std::string name, const at::Tensor& t) {
    if (t.numel() > 1) out.emplace_back(std::move(name), t);
  };
  add("arch_hidden", m.arch_hidden);
  add("arch_depth", m.arch_depth);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const auto& L = m.layers[l];
    const std::string p = fmt::format("layers.{}.", l);
    add(p + "arch_kv_groups", L.arch_groups);
    add(p + "arch_head_dim", L.arch_hd);
    add(p + "arch_intermediate", L.arch_inter);
    for (int s = 0; s < kNumFormatSlots; ++s) add(p + "arch_format_" + model::slot_name(model::kSlots[s]), L.arch_fmt[s]);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Supernet::named_lora_parameters() const {
  static constexpr std::array<const char*, 4> kNames = {"self_attn.qkv_proj", "self_attn.o_proj",
                                                         "mlp.gate_up_proj", "mlp.down_proj"};
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t l = 0; l < impl_->layers.size(); ++l) {
    const auto& L = impl_->layers[l];
    for (int s = 0; s < 4; ++s) {
      if (!L.lora_a[s].defined()) continue;
      const std::string p = fmt::format("model.layers.{}.{}.", l, kNames[s]);
      out.emplace_back(p + "lora_A", L.lora_a[s]);
      out.emplace_back(p + "lora_B", L.lora_b[s]);
    }
  }
  return out;
}

std::map<std::string, at::Tensor> Supernet::named_weights() const {
  const Impl& m = *impl_;
  std::map<std::string, at::Tensor> out;
  out["model.embed_tokens.weight"] = m.embed;
  out["model.norm.weight"] = m.norm;
  if (!m.config.tie_word_embeddings) out["lm_head.weight"] = m.lm_head;
  const int64_t qo = m.nh * m.hd, kvo = m.nkv * m.hd;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const auto& L = m.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    out[p + "input_layernorm.weight"] = L.ln1;
    out[p + "post_attention_layernorm.weight"] = L.ln2;
    out[p + "self_attn.q_proj.weight"] = L.w[kQkv].weight.narrow(0, 0, qo);
    out[p + "self_attn.k_proj.weight"] = L.w[kQkv].weight.narrow(0, qo, kvo);
    out[p + "self_attn.v_proj.weight"] = L.w[kQkv].weight.narrow(0, qo + kvo, kvo);
    out[p + "self_attn.o_proj.weight"] = L.w[kO].weight;
    out[p + "mlp.gate_proj.weight"] = L.w[kGateUp].weight.narrow(0, 0, m.I);
    out[p + "mlp.up_proj.weight"] = L.w[kGateUp].weight.narrow(0, m.I, m.I);
    out[p + "mlp.down_proj.weight"] = L.w[kDown].weight;
  }
  return out;
}

// ---- probabilities -----------------------------------------------------------------------------

ArchDist Supernet::distribution(Relaxation r, double temperature, std::optional<at::Generator> gen) const {
  const Impl& m = *impl_;
  auto relax = [&](const at::Tensor& logits) -> at::Tensor {
    if (r == Relaxation::kSoftmax) return at::softmax(logits, 0);
    // Noise drawn on the CPU (a CPU generator seeds it; the same numbers on every device), then moved.
    at::Tensor u = at::rand(logits.sizes(), gen, m.fopts().device(at::kCPU)).to(logits.device()).clamp(1e-10, 1.0 - 1e-7);
    at::Tensor soft = at::softmax((logits - at::log(-at::log(u))) / temperature, 0);
    if (r == Relaxation::kGumbel) return soft;
    at::Tensor hard = at::zeros_like(soft).scatter_(0, soft.argmax(0, true), 1.0);
    return hard - soft.detach() + soft;  // one-hot forward, soft gradient
  };
  return m.map_decisions(nullptr, [&](const at::Tensor& logits, const int64_t*) { return relax(logits); });
}

ArchDist Supernet::one_hot(const Arch& a) const {
  const Impl& m = *impl_;
  JNAS_CHECK_CONFIG(a.kv_groups.size() == m.layers.size() && a.formats.size() == m.layers.size(),
                    "an architecture of {} layers for a supernet of {}", a.kv_groups.size(), m.layers.size());
  // Every decision has logits with one entry per choice (a single choice included).
  return m.map_decisions(&a, [&](const at::Tensor& logits, const int64_t* i) {
    const int64_t n = logits.numel();
    JNAS_CHECK_CONFIG(*i >= 0 && *i < n, "architecture index {} out of [0, {})", *i, n);
    return one_hot_vec(n, *i, m.opts.device, m.prob_dtype());
  });
}

Arch Supernet::argmax() const {
  const Impl& m = *impl_;
  auto am = [](const at::Tensor& t) { return t.argmax().item<int64_t>(); };
  Arch a;
  a.hidden = am(m.arch_hidden);
  a.depth = am(m.arch_depth);
  for (const auto& L : m.layers) {
    a.kv_groups.push_back(am(L.arch_groups));
    a.head_dims.push_back(am(L.arch_hd));
    a.intermediate.push_back(am(L.arch_inter));
    std::array<int64_t, kNumFormatSlots> f{};
    for (int s = 0; s < kNumFormatSlots; ++s) f[s] = am(L.arch_fmt[s]);
    a.formats.push_back(f);
  }
  return a;
}

at::Tensor Supernet::forward(const at::Tensor& ids, const ArchDist& dist) const {
  return at::matmul(hidden(ids, dist), impl_->lm_head.t()).to(impl_->prob_dtype());
}

at::Tensor Supernet::hidden(const at::Tensor& ids, const ArchDist& dist) const {
  TORCH_CHECK(ids.dim() == 2, "Supernet::hidden: ids must be [batch, tokens]");
  return impl_->hidden_states(ids, dist);
}

at::Tensor Supernet::teacher_hidden(const at::Tensor& ids) const {
  TORCH_CHECK(ids.dim() == 2, "Supernet::teacher_hidden: ids must be [batch, tokens]");
  at::NoGradGuard no_grad;
  return impl_->hidden_states(ids, one_hot(largest_arch(impl_->space)), true);
}

const at::Tensor& Supernet::lm_head() const { return impl_->lm_head; }

// ---- extraction --------------------------------------------------------------------------------

model::LlamaModel Supernet::extract(const Arch& arch, model::RuntimeOptions runtime) const {
  model::Checkpoint ck = extract_checkpoint(arch);
  const std::vector<model::LayerSpec> specs = ck.config.layer_specs;
  // Packed tensors load as they are (the loader checks every shape and infers the group).
  return model::LlamaModel::from_checkpoint(ck, runtime, specs);
}

model::Checkpoint Supernet::extract_checkpoint(const Arch& arch) const {
  const Impl& m = *impl_;
  auto [config, specs] = arch_specs(m.config, m.space, arch, m.block_rank);
  const int64_t h = config.hidden_size;
  at::NoGradGuard no_grad;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(at::kCPU).contiguous(); };
  model::Checkpoint ck;
  ck.config = config;
  ck.config.torch_dtype = m.opts.dtype == at::kBFloat16 ? "bfloat16"
                          : m.opts.dtype == at::kHalf   ? "float16"
                          : m.opts.dtype == at::kFloat  ? "float32"
                                                        : "";  // float64: not a file dtype
  ck.config_source = "<supernet extraction>";
  ck.format = "hf";
  ck.tensors["model.embed_tokens.weight"] = cpu(m.embed.narrow(1, 0, h));
  ck.tensors["model.norm.weight"] = cpu(m.norm.narrow(0, 0, h));
  if (!config.tie_word_embeddings) ck.tensors["lm_head.weight"] = cpu(m.lm_head.narrow(1, 0, h));
  const ArchDist oh = one_hot(arch);
  for (size_t l = 0; l < specs.size(); ++l) {
    if (specs[l].skip) continue;
    const auto& L = m.layers[l];
    const model::LayerSpec& sp = specs[l];
    // Row / column index sets of the choice: the masks of the one-hot probabilities.
    const LayerProbsView pv{oh.hidden, oh.kv_groups[l], oh.head_dims[l], oh.intermediate[l]};
    const std::string p = fmt::format("model.layers.{}.", l);
    ck.tensors[p + "input_layernorm.weight"] = cpu(L.ln1.narrow(0, 0, h));
    ck.tensors[p + "post_attention_layernorm.weight"] = cpu(L.ln2.narrow(0, 0, h));
    std::array<at::Tensor, 4> rows, cols;
    for (int s = 0; s < 4; ++s) {
      auto [a, b] = m.slot_masks(static_cast<int64_t>(l), s, pv);
      rows[s] = a.nonzero().flatten();
      cols[s] = b.nonzero().flatten();
      const MixedWeight& mw = L.w[s];
      at::Tensor w = mw.weight;
      if (L.lora_a[s].defined()) {
        const double sc = m.opts.lora_alpha / static_cast<double>(m.opts.lora_rank);
        w = w + at::matmul(L.lora_b[s], L.lora_a[s]) * sc;
      }
      const auto& fmt_name = sp.format_of(s);
      const size_t fi = std::find(m.space.layers[l].formats[s].begin(), m.space.layers[l].formats[s].end(),
                                  fmt_name) - m.space.layers[l].formats[s].begin();
      const quant::QuantFormat& f = *mw.formats[fi];
      // The slot's tensors by suffix (".weight", ".weight_scale", ".weight_zero"), rows of the
      // fused matrix split into the HF linears the loader reads.
      std::map<std::string, at::Tensor> parts;
      if (!f.quantized()) {
        parts[".weight"] = cpu(w.index_select(0, rows[s]).index_select(1, cols[s]));
      } else if (f.weight == quant::WeightType::kGgml) {
        // ggml's blocks (quant/ggml_quants.h) are stored as bytes, not values, so they cannot be
        // sliced by column. Each block is quantized alone, within one row, and every width a ggml
        // slot takes is whole blocks (space.cpp, check_ggml_widths): the kept sub-matrix quantized
        // again has the supernet's blocks of those rows and columns wherever the kept columns are
        // whole aligned blocks of the full matrix (prefixes: hidden and MLP widths, whole heads).
        const quant::QuantizedWeight sub =
            quant::quantize_ref(w.index_select(0, rows[s]).index_select(1, cols[s]), f);
        parts[".weight"] = cpu(quant::pack(sub).data);
      } else {
        // Quantize on the supernet's grid (the whole matrix, its group), then slice whole groups:
        // the sub-network's numbers are exactly the fake-quantized ones the supernet used.
        quant::QuantizedWeight full = quant::quantize_on_grid(w, quant::weight_grid(w, f, mw.groups[fi]));
        quant::QuantizedWeight sub;
        sub.format = &f;
        sub.q = full.q.index_select(0, rows[s]).index_select(1, cols[s]).contiguous();
        at::Tensor gcols;  // the kept groups (all of a per-row scale)
        if (full.group == w.size(1)) {
          sub.group = cols[s].numel();
          gcols = at::zeros({1}, cols[s].options());
        } else {
          sub.group = full.group;
          gcols = cols[s].index({at::indexing::Slice(0, at::indexing::None, full.group)}).div(full.group, "floor");
        }
        sub.scale = full.scale.index_select(0, rows[s]).index_select(1, gcols);
        if (full.zero.defined()) sub.zero = full.zero.index_select(0, rows[s]).index_select(1, gcols);
        const quant::PackedWeight pw = quant::pack(sub);
        parts[".weight"] = cpu(pw.data);
        parts[".weight_scale"] = cpu(pw.scale);
        if (pw.zero.defined()) parts[".weight_zero"] = cpu(pw.zero);
      }
      const int64_t qo = sp.num_attention_heads * sp.head_dim, kvo = sp.num_key_value_heads * sp.head_dim;
      const int64_t is = sp.intermediate_size, n = rows[s].numel();
      std::vector<std::tuple<const char*, int64_t, int64_t>> split;
      switch (s) {
        case kQkv: split = {{"self_attn.q_proj", 0, qo}, {"self_attn.k_proj", qo, kvo}, {"self_attn.v_proj", qo + kvo, kvo}}; break;
        case kO: split = {{"self_attn.o_proj", 0, n}}; break;
        case kGateUp: split = {{"mlp.gate_proj", 0, is}, {"mlp.up_proj", is, is}}; break;
        default: split = {{"mlp.down_proj", 0, n}}; break;
      }
      for (const auto& [name, r0, len] : split) {
        for (const auto& [suffix, t] : parts) ck.tensors[p + name + suffix] = t.narrow(0, r0, len);
      }
    }
  }
  for (const auto& [name, t] : ck.tensors) ck.tensor_source[name] = ck.config_source;
  ck.config.layer_specs = specs;
  return ck;
}

}  // namespace jointnas::search
