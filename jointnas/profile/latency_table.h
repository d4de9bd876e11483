// The latency table: measured op latencies (ms) under self-describing keys, the per-workload
// calibration of the additive model, and their JSON file (format "jointnas-latency-table").
// The profiler fills it; the cost model only reads it. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {

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
  // end-to-end runs (profile/calibration.h): latency = scale * sum(entries) + per_block_ms * kept
  // blocks + constant_ms.
  struct Calibration {
    double scale = 1.0, per_block_ms = 0.0, constant_ms = 0.0;
    int runs = 0;      // runs the fit used
    int outliers = 0;  // runs it set aside (see fit_calibration)
    // Device memory no architecture term explains (cuBLAS workspaces, one per stream that ran a
    // GEMM): the median of measured minus predicted peak over the runs, where measured (CUDA).
    int64_t memory_bytes = 0;
    // The original model's measured latency (ms, in the scale of the fit's measurements) where the
    // calibration measured it beside the sampled architectures; 0: none. A relative latency
    // budget ("0.5x") is then taken of this, not of the table's prediction of the original: the
    // llama.cpp target (docs/llamacpp.md), whose dense f16 model reads its weights from memory
    // while the architectures a search ends at fit the cache the table was timed in.
    double reference_ms = 0.0;

    Json to_json() const;  // as the table file stores it
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

// Whether the table was measured on the CPU (`jointnas profile` writes meta.device = "cpu"): the
// CPU runtime holds other weights and feeds no linear producer-quantized codes.
bool measured_on_cpu(const LatencyTable& t);

}  // namespace jointnas::profile
