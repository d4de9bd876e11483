// The f16 reference of the GGUF tests (docs/export.md, acceptance 2): a checkpoint run by jointnas
// in fp32 and in its `f16` format with the embedding rounded to fp16 like an f16 GGUF's, and the
// output-layer term of the derived bound on |z_llama.cpp - z_jointnas(f16)|.
#pragma once

#include <string>
#include <vector>

#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"

namespace jointnas::testing {

// Every linear of every layer in `format`.
std::vector<model::LayerSpec> uniform_specs(const model::LlamaConfig& c, const std::string& format);

struct F16Reference {
  model::LlamaModel m32;  // the checkpoint as it is, fp32
  model::LlamaModel m16;  // `f16` linears, embedding (and untied head) rounded to fp16
  // 2^-11 max_v ||W_out,v||_1 max|gamma| sqrt(H): llama.cpp rounds the output layer's input h (the
  // final RMSNorm output, |h_i| <= |gamma| sqrt(H)) to fp16 and jointnas's f16 model does not, so
  // their logits may differ by up to this much more than the two fp16 evaluations' own error.
  double head_term = 0;
};
// `ck` becomes the f16 model's checkpoint (every floating tensor fp32, embedding and untied head
// rounded through fp16), as an exporter of m16 reads it.
F16Reference f16_reference(model::Checkpoint& ck);

}  // namespace jointnas::testing
