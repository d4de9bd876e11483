// Checkpoint I/O: an HF model directory (config.json + model.safetensors or a sharded index) or a
// llama2.c .bin file becomes a Checkpoint: the config plus named tensors with HF parameter names,
// memory-mapped where the file layout allows (no second full copy in host RAM).
#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/model/config.h"
#include "jointnas/model/safetensors.h"

namespace jointnas::model {

struct Checkpoint {
  LlamaConfig config;
  std::string config_source;  // the file the config came from, for messages
  // HF parameter names -> tensors on the CPU in their file dtype. Safetensors entries are
  // zero-copy views of the mapped files (read-only: never write into them).
  std::map<std::string, at::Tensor> tensors;
  // The file each tensor came from, for error messages.
  std::map<std::string, std::string> tensor_source;
  std::string format;  // "hf" or "llama2c"
};

// The first tensor holding a NaN or an Inf, as "name (file)"; nullopt when every one is finite.
// Reads every weight: for a result that is already not finite, to say why (issue 26).
std::optional<std::string> first_non_finite(const Checkpoint& ckpt);

// Detects the format of `path`: a directory with config.json (HF) or a llama2.c .bin file.
// Throws IoError naming the path (hint: what a model path must contain) when neither.
Checkpoint load_checkpoint(const std::string& path);

// HF directory: config.json + model.safetensors, or model.safetensors.index.json whose shard
// names are checked to stay inside the directory.
Checkpoint load_hf_directory(const std::string& dir);

// Zero-copy at::Tensor over a safetensors entry; keeps the mapping alive.
at::Tensor tensor_from_entry(const std::shared_ptr<SafetensorsFile>& file, const StEntry& e);

// A flat name -> tensor file (safetensors, written atomically): training state, not models.
void save_tensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors);
// Reads every tensor of a safetensors file into owned CPU tensors (the file may then go away).
std::map<std::string, at::Tensor> load_tensors(const std::string& path);

// Writes `ckpt` as an HF directory (config.json, model.safetensors) with tensors in `dtype_name`
// ("float32", "bfloat16", "float16"). Creates `dir` if needed.
void save_hf_directory(const Checkpoint& ckpt, const std::string& dir, const std::string& dtype_name);

}  // namespace jointnas::model
