// Autoregressive generation over the KV cache: greedy or sampled (temperature, top-k, top-p),
// with the decode step replayed from a CUDA graph on the GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "jointnas/model/llama.h"

namespace jointnas::model {

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  double temperature = 0.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these
  bool cuda_graph = true;         // CUDA only: capture the decode step once, replay it
};

struct GenerateResult {
  std::vector<int64_t> ids;  // generated ids, without the prompt (a stop id is included)
  double prefill_ms = 0;
  double decode_ms = 0;
  int64_t decode_steps = 0;
  bool used_cuda_graph = false;
  bool non_finite = false;  // the prompt's logits held a NaN or an Inf: nothing was generated
};

// `prompt` must be non-empty (callers put BOS there for an empty text prompt).
GenerateResult generate(const LlamaModel& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& opts);

// Picks the next token from logits [V] (float32, CPU): argmax when temperature == 0, else a sample
// from softmax(logits / T) restricted to the top-k / top-p set.
int64_t sample_token(const at::Tensor& logits, const GenerateOptions& opts, at::Generator& gen);

}  // namespace jointnas::model
