// The expected cost (see expected_cost.h): predict()'s terms as cost tensors over the choices,
// contracted with the probabilities in fp64.
#include "jointnas/profile/expected_cost.h"

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "jointnas/profile/linear_cost.h"

namespace jointnas::profile {
namespace {

at::Tensor vec(const std::vector<double>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble));
}

// Cost tensor [A, B, C] of f(a, b, c), contracted with three probability vectors.
template <typename F>
at::Tensor expect3(const at::Tensor& pa, const at::Tensor& pb, const at::Tensor& pc, int64_t na,
                   int64_t nb, int64_t nc, F f) {
  std::vector<double> v;
  v.reserve(static_cast<size_t>(na * nb * nc));
  for (int64_t a = 0; a < na; ++a)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t c = 0; c < nc; ++c) v.push_back(f(a, b, c));
  at::Tensor t = vec(v).reshape({na, nb, nc});
  return at::einsum("a,b,c,abc->", {pa, pb, pc, t});
}

void check_probs(const at::Tensor& p, size_t n, const char* what, int64_t layer) {
  TORCH_CHECK(p.defined() && p.dim() == 1 && p.size(0) == static_cast<int64_t>(n), "expected_cost: ",
              what, " probabilities of layer ", layer, " must be a vector of ", n, " choices, got ",
              p.defined() ? p.sizes().vec() : std::vector<int64_t>{});
}

// What every layer's terms share: the hidden-size choices and their probabilities, the table,
// the workload and how the table was measured.
struct Ctx {
  const std::vector<int64_t>& Hs;
  at::Tensor pH;  // fp64
  int64_t nH;
  const LatencyTable& table;
  const Workload& w;
  int64_t dtype_bytes;
  bool cpu;
  at::Tensor one;  // [1] fp64: the third probability vector of a two-decision term
};

// f(H) per hidden-size choice, as an fp64 vector.
template <typename F>
at::Tensor per_hidden(const Ctx& x, F f) {
  std::vector<double> v;
  for (int64_t H : x.Hs) v.push_back(static_cast<double>(f(H)));
  return vec(v);
}

// f(attention choice) per attention choice of L, as an fp64 vector.
template <typename F>
at::Tensor per_attention(const LayerSpace& L, F f) {
  std::vector<double> v;
  for (const AttnChoice& a : L.attention) v.push_back(static_cast<double>(f(a)));
  return vec(v);
}

// P(block runs), scalar fp64.
at::Tensor keep_of(const LayerProbs& P) {
  return P.keep.defined() ? P.keep.to(at::kDouble).reshape({}) : at::ones({}, at::kDouble);
}

void check_layer(const LayerSpace& L, const LayerProbs& P, int64_t li) {
  check_probs(P.attention, L.attention.size(), "attention", li);
  check_probs(P.intermediate, L.intermediate.size(), "intermediate", li);
  check_probs(P.qkv, L.formats_qkv.size(), "qkv format", li);
  check_probs(P.o, L.formats_o.size(), "o format", li);
  check_probs(P.gate_up, L.formats_gate_up.size(), "gate_up format", li);
  check_probs(P.down, L.formats_down.size(), "down format", li);
}

// Expected latency of one block that runs, in regime shape s: its four linears, attention and the
// fixed per-block ops, as predict() sums them.
at::Tensor block_ms(const Ctx& x, const LayerSpace& L, const LayerProbs& P, const WorkloadShape& s) {
  const LatencyTable& table = x.table;
  const auto& Hs = x.Hs;
  const bool cpu = x.cpu;
  const at::Tensor& pH = x.pH;
  const int64_t nH = x.nH;
  const at::Tensor pa = P.attention.to(at::kDouble), pi = P.intermediate.to(at::kDouble);
  const int64_t na = static_cast<int64_t>(L.attention.size()), ni = static_cast<int64_t>(L.intermediate.size());
  return expect3(pH, pa, P.qkv.to(at::kDouble), nH, na, static_cast<int64_t>(L.formats_qkv.size()),
                 [&](int64_t a, int64_t b, int64_t f) {
                   const AttnChoice& A = L.attention[b];
                   return linear_ms(table, s.m, Hs[a], (A.heads + 2 * A.kv_heads) * A.head_dim, L.formats_qkv[f],
                                    fed_quantized(L.formats_qkv[f], cpu));
                 }) +
         at::dot(pa, per_attention(L, [&](const AttnChoice& A) {
                   return table.ms(LatencyTable::attention_key(x.w.batch, s.attn_rows, s.attn_context, A.heads,
                                                               A.kv_heads, A.head_dim));
                 })) +
         expect3(pH, pa, P.o.to(at::kDouble), nH, na, static_cast<int64_t>(L.formats_o.size()),
                 [&](int64_t a, int64_t b, int64_t f) {
                   const AttnChoice& A = L.attention[b];
                   return linear_ms(table, s.m, A.heads * A.head_dim, Hs[a], L.formats_o[f],
                                    fed_quantized(L.formats_o[f], cpu));
                 }) +
         expect3(pH, pi, P.gate_up.to(at::kDouble), nH, ni, static_cast<int64_t>(L.formats_gate_up.size()),
                 [&](int64_t a, int64_t b, int64_t f) {
                   return linear_ms(table, s.m, Hs[a], 2 * L.intermediate[b], L.formats_gate_up[f],
                                    fed_quantized(L.formats_gate_up[f], cpu));
                 }) +
         expect3(pH, pi, P.down.to(at::kDouble), nH, ni, static_cast<int64_t>(L.formats_down.size()),
                 [&](int64_t a, int64_t b, int64_t f) {
                   return linear_ms(table, s.m, L.intermediate[b], Hs[a], L.formats_down[f],
                                    fed_quantized(L.formats_down[f], cpu));
                 }) +
         expect3(pH, pi, x.one, nH, ni, 1, [&](int64_t a, int64_t b, int64_t) {
           return table.ms(LatencyTable::block_fixed_key(s.m, Hs[a], L.intermediate[b]));
         });
}

// Expected latency and KV cache bytes of one regime (decode or prefill) of the workload.
std::pair<at::Tensor, at::Tensor> regime_cost(const Ctx& x, const model::LlamaConfig& c, const CostSpace& sp,
                                              const ArchProbs& pr, bool prefill) {
  const WorkloadShape s = shape_of(x.w, prefill);
  at::Tensor lat =
      at::dot(x.pH, per_hidden(x, [&](int64_t H) { return x.table.ms(LatencyTable::head_key(s.scored, H, c.vocab_size)); }));
  at::Tensor kvb = at::zeros({}, at::kDouble);
  for (size_t l = 0; l < sp.layers.size(); ++l) {
    const LayerSpace& L = sp.layers[l];
    const LayerProbs& P = pr.layers[l];
    check_layer(L, P, static_cast<int64_t>(l));
    const at::Tensor block = block_ms(x, L, P, s);
    const at::Tensor keep = keep_of(P);
    lat = lat + keep * block;
    kvb = kvb + keep * at::dot(P.attention.to(at::kDouble), per_attention(L, [&](const AttnChoice& A) {
                                 return 2 * x.w.batch * s.kv_len * A.kv_heads * A.head_dim * x.dtype_bytes;
                               }));
  }
  return {lat, kvb};
}

// Adds one layer's expected weight bytes and parameters (each times its keep probability) to e.
void add_layer_memory(const Ctx& x, const LayerSpace& L, const LayerProbs& P, ExpectedCost& e) {
  const auto& Hs = x.Hs;
  const at::Tensor& pH = x.pH;
  const int64_t nH = x.nH;
  const at::Tensor pa = P.attention.to(at::kDouble), pi = P.intermediate.to(at::kDouble);
  const int64_t na = static_cast<int64_t>(L.attention.size()), ni = static_cast<int64_t>(L.intermediate.size());
  auto bytes = [&](const at::Tensor& pw, const at::Tensor& pf, int64_t nw, const std::vector<std::string>& fs,
                   auto nk) {
    return expect3(pH, pw, pf.to(at::kDouble), nH, nw, static_cast<int64_t>(fs.size()),
                   [&](int64_t a, int64_t b, int64_t f) {
                     auto [n, k] = nk(Hs[a], b);
                     return static_cast<double>(linear_bytes(n, k, fs[f], x.dtype_bytes, x.cpu));
                   });
  };
  auto qkv_rows = [&](int64_t b) { const AttnChoice& A = L.attention[b]; return (A.heads + 2 * A.kv_heads) * A.head_dim; };
  auto q_width = [&](int64_t b) { const AttnChoice& A = L.attention[b]; return A.heads * A.head_dim; };
  at::Tensor wb =
      bytes(pa, P.qkv, na, L.formats_qkv, [&](int64_t H, int64_t b) { return std::pair{qkv_rows(b), H}; }) +
      bytes(pa, P.o, na, L.formats_o, [&](int64_t H, int64_t b) { return std::pair{H, q_width(b)}; }) +
      bytes(pi, P.gate_up, ni, L.formats_gate_up, [&](int64_t H, int64_t b) { return std::pair{2 * L.intermediate[b], H}; }) +
      bytes(pi, P.down, ni, L.formats_down, [&](int64_t H, int64_t b) { return std::pair{H, L.intermediate[b]}; }) +
      at::dot(pH, per_hidden(x, [&](int64_t H) { return 2 * H * x.dtype_bytes; }));
  at::Tensor np = expect3(pH, pa, x.one, nH, na, 1, [&](int64_t a, int64_t b, int64_t) {
                    const double H = static_cast<double>(Hs[a]);
                    return H * static_cast<double>(qkv_rows(b)) + static_cast<double>(q_width(b)) * H;
                  }) +
                  expect3(pH, pi, x.one, nH, ni, 1, [&](int64_t a, int64_t b, int64_t) {
                    return 3.0 * static_cast<double>(Hs[a]) * static_cast<double>(L.intermediate[b]);
                  }) +
                  at::dot(pH, per_hidden(x, [&](int64_t H) { return 2 * H; }));
  const at::Tensor keep = keep_of(P);
  e.weight_bytes = e.weight_bytes + keep * wb;
  e.params = e.params + keep * np;
}

}  // namespace

ExpectedCost expected_cost(const model::LlamaConfig& c, const CostSpace& sp, const ArchProbs& pr,
                           const LatencyTable& table, const Workload& w, int64_t dtype_bytes) {
  TORCH_CHECK(sp.layers.size() == pr.layers.size() &&
                  static_cast<int64_t>(sp.layers.size()) == c.num_hidden_layers,
              "expected_cost: the space, the probabilities and the config disagree on the layer count");
  check_probs(pr.hidden, sp.hidden.size(), "hidden", -1);
  const Ctx x{sp.hidden, pr.hidden.to(at::kDouble), static_cast<int64_t>(sp.hidden.size()), table, w, dtype_bytes,
              measured_on_cpu(table), at::ones({1}, at::kDouble)};
  const int64_t V = c.vocab_size;
  ExpectedCost e;
  const double tie = c.tie_word_embeddings ? 1.0 : 2.0;
  e.params = at::dot(x.pH, per_hidden(x, [&](int64_t H) { return tie * V * H + H; }));
  e.weight_bytes = e.params * static_cast<double>(dtype_bytes);
  e.latency_ms = at::zeros({}, at::kDouble);
  e.kv_cache_bytes = at::zeros({}, at::kDouble);
  for (auto [prefill, weight] : regimes(w)) {
    auto [lat, kvb] = regime_cost(x, c, sp, pr, prefill);
    e.latency_ms = e.latency_ms + weight * lat;
    e.kv_cache_bytes = prefill && w.kind == "mix" ? at::maximum(e.kv_cache_bytes, kvb) : e.kv_cache_bytes + kvb;
  }
  if (const LatencyTable::Calibration* cal = table.calibration_for(w)) {
    at::Tensor kept = at::zeros({}, at::kDouble);
    for (const LayerProbs& P : pr.layers) kept = kept + keep_of(P);
    e.latency_ms = cal->scale * e.latency_ms + cal->per_block_ms * kept + cal->constant_ms;
  }
  for (size_t l = 0; l < sp.layers.size(); ++l) add_layer_memory(x, sp.layers[l], pr.layers[l], e);
  return e;
}

}  // namespace jointnas::profile
