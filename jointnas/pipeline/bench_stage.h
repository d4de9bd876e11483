// The `bench` stage: measured decode-step and prefill latency of a model (a checkpoint, or random
// weights at a config's exact shapes), against the memory-bandwidth floor of the decode step and,
// for an export of `jointnas finetune`, against the table's prediction (the closed loop).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

// How long to time (profile::TimingPlan): the run config's `eval.bench_repeats` sets `repeats`.
struct BenchTiming {
  int64_t repeats = 30;        // timed calls, at least
  int64_t warmup = 5;          // untimed calls, at least
  double min_warmup_ms = 200;  // wall time spent warming up, at least
  double min_time_ms = 500;    // summed timed calls, at least (a stable median of a small model)
};
template <class V>
void fields(V& v, BenchTiming& t) {
  v(opt::Key{"repeats", "Timed repeats (median reported)"}, t.repeats, opt::in<int64_t>(1, 100000));
  v(opt::Key{"warmup", "Untimed warm-up calls, at least"}, t.warmup, opt::in<int64_t>(0, 100000));
  v(opt::Key{"min_warmup_ms", "... and untimed calls until this much wall time has passed"}, t.min_warmup_ms,
    opt::in(0.0, 600000.0));
  v(opt::Key{"min_time_ms", "Timed calls until --repeats are done and their times add up to this much (small models "
                            "need many repeats for a stable median)"},
    t.min_time_ms, opt::in(0.0, 600000.0));
}

struct BenchOptions {
  ModelSettings run{{}, "cpu", "", 0, false};
  opt::Path config;  // config.json for random weights
  bool random_weights = false;
  std::vector<int64_t> contexts{128};
  std::vector<int64_t> prefill;
  int64_t batch = 1;
  BenchTiming timing;
  int64_t seed = 0;
  bool no_cuda_graph = false;
  bool no_pdl = false;
  std::string weight_format;  // every linear in this format (RTN at load), else as stored
  // Several models timed together (every one loaded once, then `rounds` rounds, each timing
  // every model briefly in a rotating order): latencies comparable across models on a noisy
  // machine, and each one's ratio to the first in the same rounds.
  std::vector<std::string> models;
  int64_t rounds = 5;
  // "llama.cpp": the models are GGUF files timed through libllama on the CPU (issue 25).
  std::string runtime = "jointnas";
};
template <class V>
void fields(V& v, BenchOptions& o) {
  fields(v, o.run);
  v(opt::Key{"config", "config.json whose shapes to benchmark (with --random-weights)"}, o.config);
  v(opt::Key{"random_weights", "Generate random weights on the device"}, o.random_weights);
  v(opt::Key{"contexts", "Decode contexts (tokens already in the KV cache)"}, o.contexts, opt::in<int64_t>(1, 1 << 30));
  v(opt::Key{"prefill", "Prefill lengths"}, o.prefill, opt::in<int64_t>(1, 1 << 30));
  v(opt::Key{"batch", "Batch size"}, o.batch, opt::in<int64_t>(1, 1 << 20));
  fields(v, o.timing);
  v(opt::Key{"seed", "Seed of the random weights"}, o.seed, opt::at_least<int64_t>(0));
  v(opt::Key{"no_cuda_graph", "Time the eager decode step and prefill on CUDA"}, o.no_cuda_graph);
  v(opt::Key{"no_pdl", "Launch our CUDA kernels without programmatic dependent launch (each waits for the previous "
                       "one to finish; as JNAS_PDL=0)"},
    o.no_pdl);
  v(opt::Key{"weight_format", "Every linear in this format, round-to-nearest at load (docs/formats.md)"},
    o.weight_format);
  v(opt::Key{"models", "Time these models together in interleaved rounds (every one kept in memory; the first is "
                       "the reference of the ratios) instead of --model"},
    o.models);
  v(opt::Key{"rounds", "Interleaved rounds with --models (median over rounds)"}, o.rounds, opt::in<int64_t>(1, 1000));
  v(opt::Key{"runtime", "jointnas | llama.cpp: time GGUF files through libllama on the CPU as llama-bench does "
                        "(--threads, 0 = every core; docs/llamacpp.md)"},
    o.runtime, opt::Choices{"jointnas", "llama.cpp"});
}

// Measures (--runtime llama.cpp: run_bench_llamacpp); returns {model, device, dtype, params,
// weight_bytes, decode: [...], prefill: [...],
// predicted?, ...}.
// One timed shape of a bench: a decode step at `n` positions of context, or a prefill of `n`
// tokens; --contexts first, then --prefill. `who` names the command in the error when both are empty.
struct BenchShape {
  const char* kind;  // "decode" | "prefill"
  int64_t n;         // context | tokens
};
std::vector<BenchShape> bench_shapes(const BenchOptions& o, const char* who);

Json run_bench(const BenchOptions& o);
// With --models: {device, dtype, batch, rounds, models: [{model, params, weight_bytes, decode |
// prefill: [{context | tokens, ms (median over rounds), ms_best (the fastest round), rounds_ms,
// ratio_to_first (median over rounds of the ratio in each round), best_ratio_to_first}]}]}.
Json run_bench_rounds(const BenchOptions& o);
// --runtime llama.cpp: --model or --models are GGUF files, always timed in interleaved rounds
// (one model: its ratio is 1); the same JSON as run_bench_rounds plus `runtime`, `threads`, and
// per model `description` (llama.cpp's). run_bench calls it for --runtime llama.cpp.
Json run_bench_llamacpp(const BenchOptions& o);

}  // namespace jointnas::pipeline
