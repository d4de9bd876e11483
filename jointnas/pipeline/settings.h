// Settings shared by the stages, each declared once (core/options.h): which model runs where,
// what latency means (the workload) and the budgets. The stages' own options (stage_options.h)
// and the run config (run_config.h) are built from these.
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/options.h"
#include "jointnas/profile/workload.h"

namespace jointnas::pipeline {

// The model a stage loads and the device it runs on.
struct ModelSettings {
  opt::Path model;
  std::string device = "cpu";
  std::string dtype;  // empty: float32 on the CPU, bfloat16 on CUDA
  int64_t threads = 0;
  bool model_required = true;  // not an option: whether the command needs --model
};
template <class V>
void fields(V& v, ModelSettings& s) {
  v(opt::Key{"model", "HF model directory (config.json + safetensors) or llama2.c .bin", "-m,--model", nullptr,
             s.model_required},
    s.model);
  v(opt::Key{"device", "cpu or cuda"}, s.device, opt::Choices{"cpu", "cuda"});
  v(opt::Key{"dtype", "float32 or bfloat16 (default: float32 on cpu, bfloat16 on cuda)"}, s.dtype,
    opt::Choices{"", "float32", "bfloat16", "fp32", "bf16"});
  v(opt::Key{"threads", "CPU threads (0 = LibTorch default; at most the machine's cores)"}, s.threads,
    opt::in<int64_t>(0, 4096));
}

// The targets a stage's --target-device names ("": its --device): whose formats a search space
// defaults to (llama.cpp: ggml's; search/space.h) and whose latency a table holds.
inline opt::Choices target_choices() { return {"", "cpu", "cuda", "llama.cpp"}; }

// The knobs both training loops have (search/trainer.h): windows per step and their length, the
// distillation temperature and the checkpoint policy. `steps` is each loop's own.
template <class V>
void training_fields(V& v, int64_t& batch, int64_t& seq_len, double& kd_temperature, int64_t& checkpoint_every,
                     double& checkpoint_seconds) {
  v(opt::Key{"batch", "Windows per step", "train-batch"}, batch, opt::in<int64_t>(1, 1 << 16));
  v(opt::Key{"seq_len", "Tokens per window (at most the model's positions)"}, seq_len, opt::in<int64_t>(2, 1 << 20));
  v(opt::Key{"kd_temperature", "Distillation temperature"}, kd_temperature, opt::in(1e-3, 1e3));
  v(opt::Key{"checkpoint_every", "Steps between checkpoints in OUT/checkpoint; a rerun resumes from the last one"},
    checkpoint_every, opt::in<int64_t>(1, 1000000000));
  v(opt::Key{"checkpoint_seconds", "Also checkpoint when this many seconds passed since the last one (0: steps only)"},
    checkpoint_seconds, opt::in(0.0, 1e9));
}

// A budget as the user writes it. Latency: milliseconds ("12.5") or a fraction of the dense model
// by the table ("0.6x"); memory: the runtime's predicted peak in MiB; parameters. 0 / "": none.
struct BudgetSettings {
  std::string latency;
  double memory_mib = 0;
  double params = 0;
  bool any() const { return !latency.empty() || memory_mib > 0 || params > 0; }
};
template <class V>
void fields(V& v, BudgetSettings& b) {
  v(opt::Key{"latency", "Latency budget: ms, or a fraction of the dense model with 'x' (0.6x)"}, b.latency);
  v(opt::Key{"memory_mib", "Memory budget, MiB: the runtime's predicted peak for the workload (weights, KV cache, "
                           "activations, RoPE tables and the table's calibrated runtime constant)"},
    b.memory_mib, opt::in(0.0, 1e9));
  v(opt::Key{"params", "Parameter budget"}, b.params, opt::in(0.0, 1e15));
}
// "12.5" -> 12.5 ms; "0.6x" -> 0.6 * dense_ms. ConfigError naming `what` otherwise.
double parse_latency_budget(const std::string& text, double dense_ms, const std::string& what = "--latency");
// Checks the budget's spelling (before any stage runs).
void check_budget(const BudgetSettings& b, const std::string& what);

}  // namespace jointnas::pipeline

namespace jointnas::profile {
// The workload: --workload / --batch / --context / --tokens; `workload: {kind, batch, context,
// tokens}` in a run config.
template <class V>
void fields(V& v, Workload& w) {
  v(opt::Key{"kind", "decode | prefill (what latency means)", "workload"}, w.kind, opt::Choices{"decode", "prefill"});
  v(opt::Key{"batch", "Workload batch"}, w.batch, opt::in<int64_t>(1, 1 << 20));
  v(opt::Key{"context", "Decode context (tokens already in the KV cache)"}, w.context, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"tokens", "Prefill tokens"}, w.tokens, opt::in<int64_t>(1, 1 << 30));
}
}  // namespace jointnas::profile
