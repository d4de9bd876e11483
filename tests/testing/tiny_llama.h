// A seeded tiny Llama with GQA, built in-process: the fixture for runtime tests that need no file.
#pragma once

#include <cstdint>

#include "jointnas/model/checkpoint.h"

namespace jointnas::testing {

// hidden 64, intermediate 96, 3 layers, 4 heads / 2 kv heads, head_dim 16, vocab 97, fp32 weights
// N(0, 0.1) (norms near 1), untied head unless `tied`.
model::Checkpoint tiny_llama_checkpoint(uint64_t seed = 0, bool tied = false);

// A seeded random float32 checkpoint of any config: matrices N(0, matrix_std), embedding
// N(0, embed_std), norms 1 + N(0, 0.1); lm_head unless the config ties it.
model::Checkpoint random_llama_checkpoint(const model::LlamaConfig& config, uint64_t seed,
                                          double matrix_std, double embed_std);

}  // namespace jointnas::testing
