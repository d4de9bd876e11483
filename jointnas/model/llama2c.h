// llama2.c checkpoints (karpathy/llama2.c run.c "legacy" v0 and export.py "version 1" fp32
// formats) read into a Checkpoint with HF parameter names and HF rotary layout.
#pragma once

#include <string>

#include "jointnas/model/checkpoint.h"

namespace jointnas::model {

// llama2.c rotates interleaved pairs (2i, 2i+1); HF's rotate_half pairs (i, i + d/2). The q and k
// rows are permuted at load as transformers' convert_llama_weights_to_hf.py does, so the one HF
// runtime computes the same function.
Checkpoint load_llama2c(const std::string& path);

// The permutation itself: w [n_heads * head_dim, in] from interleaved to rotate-half row order.
at::Tensor permute_rotary_rows(const at::Tensor& w, int64_t n_heads);

}  // namespace jointnas::model
