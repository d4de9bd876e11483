// llama.cpp's CPU kernels timed one operation at a time, for the latency table of the llama.cpp
// target (docs/llamacpp.md, "The latency table"). Each entry is a ggml graph of the work a decode
// or prefill step of libllama does for one piece of a block (a linear in its ggml type, attention
// over an f16 KV cache with flash attention, the norms / SwiGLU / residual adds, the head), built
// the way libllama builds it (src/llama-graph.cpp of the pinned llama.cpp) and run on ggml's CPU
// backend with the thread count of the deployment. Weights sit in the buffer type libllama would
// give them (the first of the CPU's extra buffer types that supports the op, so q4_0 / q8_0 /
// q4_K are repacked as at load, else the plain CPU buffer). One graph holds several copies of the
// operation, each with its own weights, so that no copy is timed from a warm cache and the graph
// launch is shared as in a real step; an entry is the median over repeats of a graph's time
// divided by its copies. ggml.h stays inside op_timer.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jointnas::llamacpp {

struct OpTime {
  double ms = 0, p10 = 0, p90 = 0;  // per operation: median and percentiles of `samples`
  std::vector<double> samples;      // one per timed graph, divided by its copies
};

// Median and 10th / 90th percentiles of per-operation times (at least one).
OpTime summarize(std::vector<double> samples);

class OpTimer {
 public:
  // `rotate_bytes`: copies of an operation's weights per graph until they exceed this (at least
  // 4 copies, at most 64): the bytes read between two reads of one weight, which decide whether it
  // comes from the cache. Throws ConfigError when this build has no llama.cpp.
  OpTimer(int threads, int64_t rotate_bytes, int warmup, int repeats);
  ~OpTimer();
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

  // Whether `format` names a ggml type this build of ggml has ("f16", "q8_0", "q4_k", ...).
  static bool is_ggml_type(const std::string& format);

  // y[m, n] = x[m, k] W^T, W in the ggml type `format` (jointnas's format names), x f32.
  OpTime linear(int64_t m, int64_t k, int64_t n, const std::string& format);
  // RoPE of q and k, the K / V rows written into an f16 cache, and flash attention of `rows`
  // query rows over the cache's `context` + `rows` positions (padded to 256 as libllama pads n_kv).
  OpTime attention(int64_t rows, int64_t context, int64_t heads, int64_t kv_heads, int64_t head_dim);
  // Two RMSNorms with their weights, SwiGLU at width `i`, two residual adds, at m rows of width h.
  OpTime block_fixed(int64_t m, int64_t h, int64_t i);
  // The embedding rows of `scored` tokens (f16 table), the final RMSNorm and the f16 output matrix
  // over them (the embedding of the other rows of a prefill is negligible beside its blocks).
  OpTime head(int64_t scored, int64_t h, int64_t vocab);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace jointnas::llamacpp
