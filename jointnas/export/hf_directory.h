// Writing a found model as a Hugging Face directory a user keeps: model.safetensors (packed
// formats), config.json with the per-layer specs, the tokenizer copied from the source model, and
// jointnas_export.json (provenance and the per-layer quantization manifest).
#pragma once

#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/model/checkpoint.h"

namespace jointnas::exporting {

// Copies the tokenizer of the checkpoint at `model_path` into the HF directory `out` (llama2.c:
// tokenizer.bin beside the .bin plus a tokenizer_config.json; HF: the tokenizer files present).
// Returns the name of the main file copied ("" when none).
std::string copy_tokenizer(const model::Checkpoint& source, const std::string& model_path, const std::string& out);

// The per-layer formats of the kept blocks: [{"layer": l, "qkv": ..., "o": ..., ...}].
Json quantization_manifest(const model::LlamaConfig& config);

// What jointnas_export.json records beside the model.
struct Provenance {
  std::string source_model;
  Json arch;        // arch.json (architecture, predicted, budget, workload are copied)
  Json finetune;    // steps, KD, text, LoRA rank, lr, seed
  std::string tokenizer;
};
Json export_json(const model::LlamaConfig& config, const Provenance& p);

// model.safetensors + config.json (dtype `dtype`), the tokenizer of `source` and
// jointnas_export.json, all into `out`.
void write_hf_export(const model::Checkpoint& model, const std::string& dtype, const model::Checkpoint& source,
                     Provenance p, const std::string& out);

}  // namespace jointnas::exporting
