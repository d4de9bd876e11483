// A seeded tiny Llama with GQA, built in-process: the fixture for runtime tests that need no file.
#pragma once

#include <cstdint>

#include "jointnas/model/checkpoint.h"

namespace jointnas::testing {

// hidden 64, intermediate 96, 3 layers, 4 heads / 2 kv heads, head_dim 16, vocab 97, fp32 weights
// N(0, 0.1) (norms near 1), untied head unless `tied`.
model::Checkpoint tiny_llama_checkpoint(uint64_t seed = 0, bool tied = false);

}  // namespace jointnas::testing
