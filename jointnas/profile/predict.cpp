// The discrete cost model (see predict.h): the table's latencies summed over the architecture's
// ops, and its memory: weights, KV cache, RoPE tables and the activation peak, replayed
// allocation by allocation (AllocWalk).
#include "jointnas/profile/predict.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include "jointnas/core/error.h"
#include "jointnas/model/rope.h"
#include "jointnas/profile/linear_cost.h"
#include "jointnas/quant/format.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/qlinear.h"

namespace jointnas::profile {
namespace {

// Peak transient memory of one forward, replayed allocation by allocation as LlamaModel::run /
// block (model/llama.cpp), kernels::linear / linear_add (kernels/linear.cpp) and QuantLinear::run
// (quant/qlinear.cpp) allocate and free on CUDA: the caching allocator's allocated peak is this
// walk's peak up to its 512-byte rounding. Keep the three in step. A sum of the largest tensors
// per phase misses what a block keeps alive to its end (qkv, the roped q and the attention output
// stay referenced through the MLP) and the int32 accumulator of w8a8's _int_mm; on the default
// 8B space that summary predicted the prefill peak 74-222 MB low (docs/benchmarks.md).
class AllocWalk {
 public:
  void alloc(int64_t b) {
    live_ += b;
    peak_ = std::max(peak_, live_);
  }
  void free(int64_t b) { live_ -= b; }
  int64_t live() const { return live_; }
  int64_t peak() const { return peak_; }

 private:
  int64_t live_ = 0, peak_ = 0;
};

// Rows up to which QuantLinear takes its batch-1 GEMVs on CUDA, and the rows _int_mm needs.
constexpr int64_t kGemvRows = quant::cuda::kMaxGemvRows, kIntMmRows = quant::kIntMmMinRows;

// y = x W^T over `rows` token rows, K -> N, in `format`; leaves y [rows, N] allocated.
// `quantized_input`: x came quantized from its producer (no quantization of x here).
void walk_linear(AllocWalk& a, int64_t rows, int64_t k, int64_t n, const std::string& format, int64_t eb,
                 bool quantized_input = false) {
  const quant::QuantFormat& f = quant::find_format(format);
  const int64_t y = rows * n * eb;
  if (!f.quantized() || (f.weight_only() && rows <= kGemvRows)) {
    a.alloc(y);
    return;
  }
  if (f.weight_only()) {  // dequantize to the compute dtype, then cuBLAS
    a.alloc(n * k * eb);
    a.alloc(y);
    a.free(n * k * eb);
    return;
  }
  // Per-token activation quantization: 1-byte codes [rows, K] and fp32 scales [rows], alive
  // through the GEMM.
  const int64_t q = rows * k + rows * 4;
  if (!quantized_input) a.alloc(q);
  if (rows > kGemvRows && f.act == quant::ActType::kInt8PerToken) {
    const int64_t padded = rows < kIntMmRows ? kIntMmRows * k : 0;  // zero rows padded on
    a.alloc(padded);
    const int64_t acc = std::max(rows, kIntMmRows) * n * 4;  // _int_mm's int32 output
    a.alloc(acc);
    a.alloc(y);
    a.free(acc + padded);
  } else {
    a.alloc(y);  // batch-1 GEMV or _scaled_mm: straight to the compute dtype
  }
  if (!quantized_input) a.free(q);
}

// residual + x W^T: fused into the GEMV epilogue at batch 1 (bf16: one row; quantized: up to
// kGemvRows), otherwise the linear's output and then the sum.
void walk_linear_add(AllocWalk& a, int64_t rows, int64_t k, int64_t n, const std::string& format, int64_t eb,
                     bool quantized_input = false) {
  const bool fused = quant::find_format(format).quantized() ? rows <= kGemvRows : rows == 1;
  walk_linear(a, rows, k, n, format, eb, quantized_input);
  if (fused) return;
  a.alloc(rows * n * eb);
  a.free(rows * n * eb);
}

// One block over `rows` = batch * t token rows; its input is live (counted by the caller), its
// output is left allocated, everything else is freed. `cpu`: no producer quantizes its output.
void walk_block(AllocWalk& a, int64_t rows, int64_t t, int64_t batch, const model::LayerSpec& l, int64_t H,
                int64_t eb, bool cpu) {
  const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
  const int64_t I = l.intermediate_size;
  const int64_t h = rows * H * eb, qb = rows * q * eb;
  // A producer that quantizes for its linear writes 1-byte codes and fp32 scales instead of bf16.
  const bool fq = fed_quantized(l.format_qkv, cpu), fo = fed_quantized(l.format_o, cpu),
             fg = fed_quantized(l.format_gate_up, cpu), fd = fed_quantized(l.format_down, cpu);
  auto produced = [&](bool quantized, int64_t width) { return quantized ? rows * width + rows * 4 : rows * width * eb; };
  const int64_t h1 = produced(fq, H), h2 = produced(fg, H), act = produced(fd, I);
  a.alloc(h1);                                                 // h = rms_norm(x)
  walk_linear(a, rows, H, q + 2 * kv, l.format_qkv, eb, fq);  // qkv (K / V go to the cache)
  a.alloc(qb);                                                 // q after RoPE
  a.alloc(qb);                                                 // attention output
  if (t > 1) {
    const int64_t lse = batch * l.num_attention_heads * t * 4;  // flash attention's logsumexp
    a.alloc(lse);
    a.free(lse);
  }
  if (fo) {
    // The attention output's codes are gathered from [B, nh, T, hd]; the output is released,
    // o_proj runs, its codes go out of scope.
    a.alloc(produced(true, q));
    a.free(qb);
    walk_linear_add(a, rows, q, H, l.format_o, eb, true);  // out = x + o_proj(attn)
    a.free(produced(true, q));
  } else {
    if (t > 1) {
      a.alloc(qb);  // [B, nh, T, hd] -> [B, T, nh hd] copy; the attention output is then freed
      a.free(qb);
    }
    walk_linear_add(a, rows, q, H, l.format_o, eb);  // out = x + o_proj(attn)
  }
  a.alloc(h2);                                     // h = rms_norm(out) replaces the first h
  a.free(h1);
  walk_linear(a, rows, H, 2 * I, l.format_gate_up, eb, fg);
  a.alloc(act);  // silu(gate) * up; the gate_up output is freed after it
  a.free(rows * 2 * I * eb);
  walk_linear_add(a, rows, I, H, l.format_down, eb, fd);  // the block's output
  // h, qkv, q, the attention output (unless released for o_proj's codes), out and the SiLU
  // product go out of scope.
  a.free(h2 + (q + 2 * kv) * rows * eb + (fo ? 1 : 2) * qb + h + act);
}

// Peak transient bytes of LlamaModel::run over `t` tokens per sequence (rows = batch * t), scoring
// the last position of each: int64 ids and positions, the embedding, the blocks in turn (the
// previous block's output is freed once the next one returns), the final norm and fp32 logits.
int64_t forward_peak_bytes(int64_t batch, int64_t t, const std::vector<model::LayerSpec>& specs, int64_t H,
                           int64_t V, int64_t eb, bool cpu) {
  const int64_t rows = batch * t;
  AllocWalk a;
  a.alloc(2 * rows * 8);  // token ids on the device and positions
  a.alloc(rows * H * eb);  // embedding
  for (const model::LayerSpec& l : specs) {
    if (l.skip) continue;
    walk_block(a, rows, t, batch, l, H, eb, cpu);
    a.free(rows * H * eb);  // the block's input
  }
  a.alloc(batch * H * eb);  // final norm of the last positions
  a.alloc(batch * V * 4);   // fp32 logits
  return a.peak();
}

}  // namespace

Json Cost::to_json() const {
  return Json{{"latency_ms", latency_ms}, {"weight_bytes", weight_bytes}, {"kv_cache_bytes", kv_cache_bytes},
              {"activation_bytes", activation_bytes}, {"table_bytes", table_bytes}, {"runtime_bytes", runtime_bytes},
              {"peak_bytes", peak_bytes()}, {"params", params}};
}

Cost predict(const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs,
             const LatencyTable& table, const Workload& w, int64_t dtype_bytes) {
  JNAS_CHECK_CONFIG(static_cast<int64_t>(specs.size()) == c.num_hidden_layers,
                    "cost model: {} layer specs for {} layers", specs.size(), c.num_hidden_layers);
  const int64_t H = c.hidden_size, V = c.vocab_size;
  const bool cpu = measured_on_cpu(table);
  Cost cost;
  cost.params = V * H * (c.tie_word_embeddings ? 1 : 2) + H;
  cost.weight_bytes = cost.params * dtype_bytes;  // embeddings, head, final norm
  for (auto [prefill, weight] : regimes(w)) {
    const WorkloadShape s = shape_of(w, prefill);
    double lat = table.ms(LatencyTable::head_key(s.scored, H, V));
    // A decode workload first fills its context (a prefill of `context` tokens): its peak counts.
    int64_t act = prefill ? forward_peak_bytes(w.batch, w.tokens, specs, H, V, dtype_bytes, cpu)
                          : forward_peak_bytes(w.batch, 1, specs, H, V, dtype_bytes, cpu);
    if (!prefill && w.context > 0) act = std::max(act, forward_peak_bytes(w.batch, w.context, specs, H, V, dtype_bytes, cpu));
    for (const model::LayerSpec& l : specs) {
      if (l.skip) continue;
      const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
      const int64_t I = l.intermediate_size;
      lat += linear_ms(table, s.m, H, q + 2 * kv, l.format_qkv, fed_quantized(l.format_qkv, cpu));
      lat += table.ms(LatencyTable::attention_key(w.batch, s.attn_rows, s.attn_context,
                                                  l.num_attention_heads, l.num_key_value_heads, hd));
      lat += linear_ms(table, s.m, q, H, l.format_o, fed_quantized(l.format_o, cpu));
      lat += linear_ms(table, s.m, H, 2 * I, l.format_gate_up, fed_quantized(l.format_gate_up, cpu));
      lat += linear_ms(table, s.m, I, H, l.format_down, fed_quantized(l.format_down, cpu));
      lat += table.ms(LatencyTable::block_fixed_key(s.m, H, I));
    }
    cost.latency_ms += weight * lat;
    cost.activation_bytes = std::max(cost.activation_bytes, act);
    int64_t kvb = 0;
    for (const model::LayerSpec& l : specs) {
      if (!l.skip) kvb += 2 * w.batch * s.kv_len * l.num_key_value_heads * l.head_dim * dtype_bytes;
    }
    cost.kv_cache_bytes = std::max(cost.kv_cache_bytes, kvb);
  }
  {
    // LlamaModel's RoPE tables: one cos and one sin [P, hd] fp32 table per distinct (head_dim,
    // theta), P the positions the workload's cache holds as model::RopeTables rounds them.
    std::set<std::pair<int64_t, double>> tables;
    for (const model::LayerSpec& l : specs) {
      if (!l.skip) tables.insert({l.head_dim, l.rope_theta});
    }
    int64_t positions = 1;
    for (auto [prefill, weight] : regimes(w)) positions = std::max(positions, shape_of(w, prefill).kv_len);
    const int64_t rows = model::rope_table_positions(positions, c.max_position_embeddings);
    for (const auto& [hd, theta] : tables) cost.table_bytes += 2 * rows * hd * 4;
  }
  if (const LatencyTable::Calibration* cal = table.calibration_for(w)) {
    int64_t kept = 0;
    for (const model::LayerSpec& l : specs) kept += l.skip ? 0 : 1;
    cost.latency_ms = cal->scale * cost.latency_ms + cal->per_block_ms * static_cast<double>(kept) + cal->constant_ms;
    cost.runtime_bytes = cal->memory_bytes;
  }
  for (const model::LayerSpec& l : specs) {
    if (l.skip) continue;
    const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
    const int64_t I = l.intermediate_size;
    cost.params += 2 * H + H * (q + 2 * kv) + q * H + 2 * I * H + I * H;
    cost.weight_bytes += 2 * H * dtype_bytes + linear_bytes(q + 2 * kv, H, l.format_qkv, dtype_bytes, cpu) +
                         linear_bytes(H, q, l.format_o, dtype_bytes, cpu) +
                         linear_bytes(2 * I, H, l.format_gate_up, dtype_bytes, cpu) +
                         linear_bytes(H, I, l.format_down, dtype_bytes, cpu);
  }
  return cost;
}

}  // namespace jointnas::profile
