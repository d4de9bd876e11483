// CUDA-graph decode: the whole decode step (32 blocks of small GEMVs, norms, RoPE, attention) is
// captured once and replayed per token, so kernel-launch gaps vanish from per-token latency.
// Only compiled with JNAS_WITH_CUDA; this header includes no CUDA headers.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "jointnas/model/llama.h"

namespace jointnas::model {

class CudaGraphDecoder {
 public:
  // Captures model.decode_step_static over `cache` (which must outlive this object).
  CudaGraphDecoder(const LlamaModel& model, KVCache& cache);
  ~CudaGraphDecoder();
  // Writes `token` at position `pos` and replays the graph; returns fp32 logits [B, 1, V]
  // (a static buffer, overwritten by the next step).
  at::Tensor step(int64_t token, int64_t pos);
  // Replays with the current token/position buffers (benchmarks).
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Any call of fixed shapes captured once and replayed (the prefill of a fixed length in benchmarks):
// two warm-up calls on a side stream (library handles, workspaces, kernel selection outside the
// capture), then the capture. `fn` must not synchronize with the host.
class CudaGraphCall {
 public:
  explicit CudaGraphCall(const std::function<void()>& fn);
  ~CudaGraphCall();
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

void cuda_synchronize();

// Median milliseconds of `fn` timed with CUDA events on the current stream, after `warmup` calls;
// every sample goes to `samples_ms` when given.
double cuda_time_ms(const std::function<void()>& fn, int warmup, int repeats,
                    std::vector<double>* samples_ms = nullptr);

// Measured device-to-device copy bandwidth in bytes/s (bytes read + written), the memory floor's
// denominator: median over repeats of a copy of `bytes`.
double cuda_copy_bandwidth(int64_t bytes);

}  // namespace jointnas::model
