// Loading what a stage runs; see model_loading.h.
#include "jointnas/pipeline/model_loading.h"

#include <filesystem>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/machine.h"
#include "jointnas/core/paths.h"

namespace jointnas::pipeline {
namespace fs = std::filesystem;

model::RuntimeOptions runtime_options(const ModelSettings& s) {
  model::RuntimeOptions o;
  if (s.device == "cuda") {
#ifndef JNAS_WITH_CUDA
    throw ConfigError("this build has no CUDA support",
                      "rebuild with -DJNAS_WITH_CUDA=ON on a machine with the CUDA PyTorch, or use --device cpu");
#endif
    o.device = c10::Device(c10::kCUDA, 0);
  }
  const std::string dt = s.dtype.empty() ? (s.device == "cuda" ? "bfloat16" : "float32") : s.dtype;
  o.dtype = (dt == "bfloat16" || dt == "bf16") ? c10::kBFloat16 : c10::kFloat;
  if (const int n = bounded_thread_count(s.threads, "--threads"); n > 0) at::set_num_threads(n);
  return o;
}

std::string target_device_name(const std::string& target_device, const model::RuntimeOptions& ro) {
  return !target_device.empty() ? target_device : ro.device.is_cuda() ? "cuda" : "cpu";
}

std::unique_ptr<tok::Tokenizer> load_tokenizer_for(const std::string& model_path, int64_t vocab_size) {
  if (dir_exists(model_path)) return tok::load_tokenizer(model_path);
  const fs::path dir = fs::path(model_path).parent_path();
  for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
    const fs::path p = dir / name;
    if (file_exists(p.string())) return tok::load_llama2c_tokenizer(p.string(), static_cast<int32_t>(vocab_size));
  }
  throw IoError(fmt::format("no tokenizer found beside '{}'", model_path),
                "put tokenizer.bin (llama2.c format) next to the .bin checkpoint");
}

LoadedModel load_model(const ModelSettings& s, bool need_tokenizer) {
  LoadedModel lm;
  const model::RuntimeOptions opts = runtime_options(s);
  lm.ckpt = model::load_checkpoint(s.model);
  lm.model = std::make_unique<model::LlamaModel>(model::LlamaModel::from_checkpoint(lm.ckpt, opts));
  if (need_tokenizer) {
    lm.tokenizer = load_tokenizer_for(s.model, lm.ckpt.config.vocab_size);
    JNAS_CHECK_IO(lm.tokenizer->vocab_size() <= lm.ckpt.config.vocab_size,
                  "{}: tokenizer has {} tokens but the model's vocab_size is {}", s.model.str(),
                  lm.tokenizer->vocab_size(), lm.ckpt.config.vocab_size);
  }
  return lm;
}

std::string dtype_name(c10::ScalarType t) {
  return t == at::kBFloat16 ? "bfloat16" : t == at::kHalf ? "float16" : "float32";
}

void throw_non_finite(const LoadedModel& lm, const std::string& model_path, const std::string& what) {
  if (const std::optional<std::string> bad = model::first_non_finite(lm.ckpt)) {
    throw IoError(fmt::format("{}: {} not finite: the weight {} holds NaN or Inf values", model_path, what, *bad),
                  "the model file is damaged, or the finetune that wrote it diverged; export or download it again");
  }
  throw IoError(fmt::format("{}: {} not finite, though every weight is finite: the activations overflow in {}",
                            model_path, what, lm.model ? dtype_name(lm.model->options().dtype) : "this dtype"),
                "run it in float32 (--dtype float32)");
}

}  // namespace jointnas::pipeline
