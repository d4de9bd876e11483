// Cost model: pure functions from an architecture (LayerSpec list) or a probability distribution
// over architectures to predicted latency and memory, given a measured latency table and a
// workload. The additive decomposition (one table entry per linear, attention and fixed op) is
// the same in the discrete and the expected version, so that the expectation at one-hot
// probabilities equals the discrete cost exactly (tests/profile).
#pragma once

#include <cstdint>
#include <array>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"

namespace jointnas::profile {

// What latency means. decode: one new token per sequence at context `context` (M = batch rows
// through every linear); prefill: `tokens` tokens per sequence at once (M = batch * tokens).
// mix: decode_weight * decode + prefill_weight * prefill.
struct Workload {
  std::string kind = "decode";  // decode | prefill | mix
  int64_t batch = 1;
  int64_t context = 512;        // decode: tokens already in the KV cache
  int64_t tokens = 2048;        // prefill length
  double decode_weight = 1.0, prefill_weight = 0.0;  // mix only

  static Workload from_json(const Json& j, const std::string& source);
  Json to_json() const;
  std::string name() const;  // "decode_b1_c512", "prefill_b1_s2048", "mix_..."
};

// Measured op latencies (ms), keyed by self-describing strings (see the key builders). The
// profiler fills it; the cost model only reads it.
class LatencyTable {
 public:
  struct Entry {
    double ms = 0, p10 = 0, p90 = 0;
    int repeats = 0;
  };
  // `quantized_input`: x arrives quantized per token by its producer (a w8a8 / fp8 linear after
  // RMSNorm or SiLU * up on CUDA, quant::producer_quantizes_input): timed without QuantLinear's own
  // quantization of x, key suffix "/qx". The producer's cost is in block_fixed.
  static std::string linear_key(int64_t m, int64_t k, int64_t n, const std::string& format,
                                bool quantized_input = false);
  // Attention of one layer for `rows` query tokens per sequence over `context` keys (decode:
  // rows 1; prefill: rows = context = S), batch b.
  static std::string attention_key(int64_t b, int64_t rows, int64_t context, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim);
  // Per-block fixed work at hidden size h and m token rows: 2 RMSNorms, RoPE / KV write, SiLU*mul
  // at intermediate i, residual adds.
  static std::string block_fixed_key(int64_t m, int64_t h, int64_t i);
  // Embedding + final norm + LM head (bf16) at hidden h, vocab v, m rows scored.
  static std::string head_key(int64_t m, int64_t h, int64_t v);
  // Launch overhead per kernel inside a CUDA-graph decode step (ms), if measured.
  static constexpr const char* kLaunchKey = "launch";

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  // Throws ConfigError naming the key and the table's source (hint: re-run `jointnas profile`).
  double ms(const std::string& key) const;
  void set(const std::string& key, Entry e) { entries_[key] = e; }
  const std::map<std::string, Entry>& entries() const { return entries_; }

  // The additive model misses what lies between the measured ops (reshapes, RoPE tables, the
  // embedding gather, dispatch gaps). Per workload, a linear correction fitted on a few measured
  // end-to-end runs: latency = scale * sum(entries) + per_block_ms * kept blocks + constant_ms.
  struct Calibration {
    double scale = 1.0, per_block_ms = 0.0, constant_ms = 0.0;
    int runs = 0;      // runs the fit used
    int outliers = 0;  // runs it set aside (see fit_calibration)
    // Device memory no architecture term explains (cuBLAS workspaces, one per stream that ran a
    // GEMM): the median of measured minus predicted peak over the runs, where measured (CUDA).
    int64_t memory_bytes = 0;
  };
  std::map<std::string, Calibration> calibration;  // by Workload::name()
  const Calibration* calibration_for(const Workload& w) const;

  Json meta;            // device, versions, clocks, git SHA, workload
  std::string source;   // file it was read from, for messages

  Json to_json() const;
  static LatencyTable from_json(const Json& j, const std::string& source);
  static LatencyTable load(const std::string& path);
  void save(const std::string& path) const;  // atomic

 private:
  std::map<std::string, Entry> entries_;
};

struct Cost {
  double latency_ms = 0;
  int64_t weight_bytes = 0;      // as the runtime holds them: packed formats, embeddings, norms, and
                                 // on the CPU the dequantized copy of each weight-only linear
  int64_t kv_cache_bytes = 0;    // at the workload's batch and context (+ new tokens)
  int64_t activation_bytes = 0;  // peak transient tensors of one forward for the workload
  int64_t table_bytes = 0;       // the runtime's RoPE cos / sin tables (fp32, per head_dim)
  int64_t runtime_bytes = 0;     // the calibration's constant (LatencyTable::Calibration::memory_bytes)
  int64_t params = 0;
  int64_t peak_bytes() const {
    return weight_bytes + kv_cache_bytes + activation_bytes + table_bytes + runtime_bytes;
  }
  Json to_json() const;
};

// Discrete cost of a model described by `config` (global sizes) and `specs` (per layer).
// `dtype_bytes`: size of the compute dtype (KV cache, activations, unquantized weights).
Cost predict(const model::LlamaConfig& config, const std::vector<model::LayerSpec>& specs,
             const LatencyTable& table, const Workload& w, int64_t dtype_bytes = 2);

// The decisions of the search space as the cost model sees them: candidate values per decision.
// One attention shape a layer may take: query heads, KV heads and head size (the search cuts
// whole KV groups, so heads and KV heads move together, and shrinks the head size).
struct AttnChoice {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  double rope_theta = 0;  // the RoPE base at this head size (0: the model's)
  bool operator==(const AttnChoice&) const = default;
};
struct LayerSpace {
  std::vector<AttnChoice> attention;   // joint (heads, kv heads, head size) choices
  std::vector<int64_t> intermediate;   // MLP widths
  std::vector<std::string> formats_qkv, formats_o, formats_gate_up, formats_down;
  bool can_skip = false;
};
struct CostSpace {
  std::vector<int64_t> hidden;  // global hidden size choices
  std::vector<LayerSpace> layers;
};
// Probabilities (1-D tensors, each summing to 1) over the choices of a CostSpace, in its order.
struct LayerProbs {
  at::Tensor attention, intermediate, qkv, o, gate_up, down;
  at::Tensor keep;  // scalar probability that the block runs (1 when it cannot be skipped)
};
struct ArchProbs {
  at::Tensor hidden;
  std::vector<LayerProbs> layers;
};

struct ExpectedCost {
  at::Tensor latency_ms;      // scalar, differentiable in every probability
  at::Tensor weight_bytes;    // scalar, differentiable
  at::Tensor kv_cache_bytes;  // scalar, differentiable
  at::Tensor params;          // scalar, differentiable
};

// Expectation of predict() over independent decisions with the given probabilities. Every term
// of predict() is a table value indexed by at most (hidden, width, format) of one op, so its
// expectation is a contraction of a small cost tensor with the probability vectors; at one-hot
// probabilities it equals predict() of the selected architecture (up to fp64 rounding).
ExpectedCost expected_cost(const model::LlamaConfig& config, const CostSpace& space,
                           const ArchProbs& probs, const LatencyTable& table, const Workload& w,
                           int64_t dtype_bytes = 2);

// Every table key that predict() / expected_cost() can ask for over `space` and `w`: what the
// profiler must measure.
// `cpu_table`: the keys of a table measured on the CPU (no producer-quantized linears there).
std::vector<std::string> required_keys(const model::LlamaConfig& config, const CostSpace& space,
                                       const Workload& w, bool cpu_table = false);

// Fit of LatencyTable::Calibration from (uncalibrated prediction, kept blocks, measured ms)
// triples, >= 3 runs with positive predictions and measurements. A few end-to-end runs on a
// noisy machine do not pin down three parameters when the block count moves with the prediction,
// so the fit is guarded:
// - it minimises relative error (residuals divided by the measurement);
// - it considers the nested models {scale}, {scale, constant}, {scale, per block} and all three,
//   keeps those with scale > 0 whose calibrated prediction is positive on every run, and picks
//   the one with the smallest leave-one-out relative error (a term fitted to noise predicts the
//   held-out run worse, so it drops out); scale alone always qualifies;
// - a run whose residual exceeds both 10 % and 4x the median residual is set aside as an outlier
//   (a burst of load on the machine) and the fit repeated, at most n/4 runs in all.
LatencyTable::Calibration fit_calibration(const std::vector<std::array<double, 3>>& runs);

// The architecture (config + specs) selected by choice indices, for tests and discretisation.
struct Selection {
  int64_t hidden = 0;
  std::vector<int64_t> attention, intermediate, qkv, o, gate_up, down;
  std::vector<bool> keep;
};
// A uniformly random choice per decision; a droppable block is dropped with `drop_probability`.
Selection random_selection(const CostSpace& space, std::mt19937_64& rng, double drop_probability = 0.2);

std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> select(
    const model::LlamaConfig& base, const CostSpace& space, const Selection& s);

}  // namespace jointnas::profile
