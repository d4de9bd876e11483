// Loading what a stage runs: the runtime options of --device / --dtype / --threads, a checkpoint
// with its tokenizer, the tokenizer beside a checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"
#include "jointnas/pipeline/settings.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::pipeline {

// Device and dtype of --device / --dtype; sets LibTorch's intra-op threads from --threads.
// ConfigError for cuda in a build without CUDA.
model::RuntimeOptions runtime_options(const ModelSettings& s);
// "cpu" or "cuda": the device whose formats a space defaults to (`target_device`, else --device).
std::string target_device_name(const std::string& target_device, const model::RuntimeOptions& ro);

struct LoadedModel {
  model::Checkpoint ckpt;
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;  // nullptr when not asked for
};
LoadedModel load_model(const ModelSettings& s, bool need_tokenizer);

// A result that is not finite (`what`: "the perplexity is", ...) is an IoError naming the first
// weight holding a NaN or an Inf, or, when every weight is finite, the compute dtype: never a
// silent `null` or token 0 forever (issue 26).
[[noreturn]] void throw_non_finite(const LoadedModel& lm, const std::string& model_path, const std::string& what);

// The tokenizer beside a checkpoint: the model directory itself, or for a llama2.c .bin file the
// tok512.bin / tokenizer.bin in the same folder. IoError when there is none.
std::unique_ptr<tok::Tokenizer> load_tokenizer_for(const std::string& model_path, int64_t vocab_size);

// The storage dtype name of a compute dtype ("bfloat16", "float16", "float32").
std::string dtype_name(c10::ScalarType t);

}  // namespace jointnas::pipeline
