// Shared CLI plumbing.
#include "common.h"

#include <ATen/Parallel.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"

namespace jointnas::cli {
namespace fs = std::filesystem;

void add_format_flag(CLI::App* app, std::string& format, const std::string& flag) {
  app->add_option(flag, format, "Output format on stdout: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

void add_run_flags(CLI::App* app, RunFlags& f, bool model_required, const std::string& output_flag) {
  auto* o = app->add_option("-m,--model", f.model,
                            "HF model directory (config.json + safetensors) or llama2.c .bin");
  if (model_required) o->required();
  app->add_option("--device", f.device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app->add_option("--dtype", f.dtype, "float32 or bfloat16 (default: float32 on cpu, bfloat16 on cuda)")
      ->check(CLI::IsMember({"float32", "bfloat16", "fp32", "bf16"}));
  app->add_option("--threads", f.threads, "CPU threads (0 = LibTorch default)");
  add_format_flag(app, f.format, output_flag);
}

model::RuntimeOptions runtime_options(const RunFlags& f) {
  model::RuntimeOptions o;
  if (f.device == "cuda") {
#ifndef JNAS_WITH_CUDA
    throw ConfigError("this build has no CUDA support",
                      "rebuild with -DJNAS_WITH_CUDA=ON on a machine with the CUDA PyTorch, or use "
                      "--device cpu");
#endif
    o.device = c10::Device(c10::kCUDA, 0);
  }
  std::string dt = f.dtype.empty() ? (f.device == "cuda" ? "bfloat16" : "float32") : f.dtype;
  o.dtype = (dt == "bfloat16" || dt == "bf16") ? c10::kBFloat16 : c10::kFloat;
  if (f.threads > 0) at::set_num_threads(f.threads);
  return o;
}

std::unique_ptr<tok::Tokenizer> load_tokenizer_for(const std::string& model_path,
                                                   int64_t vocab_size) {
  if (dir_exists(model_path)) return tok::load_tokenizer(model_path);
  const fs::path dir = fs::path(model_path).parent_path();
  for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
    const fs::path p = dir / name;
    if (file_exists(p.string())) return tok::load_llama2c_tokenizer(p.string(), static_cast<int32_t>(vocab_size));
  }
  throw IoError(fmt::format("no tokenizer found beside '{}'", model_path),
                "put tokenizer.bin (llama2.c format) next to the .bin checkpoint");
}

LoadedModel load_model(const RunFlags& f, bool need_tokenizer) {
  LoadedModel lm;
  model::RuntimeOptions opts = runtime_options(f);
  lm.ckpt = model::load_checkpoint(f.model);
  lm.model = std::make_unique<model::LlamaModel>(model::LlamaModel::from_checkpoint(lm.ckpt, opts));
  if (need_tokenizer) {
    lm.tokenizer = load_tokenizer_for(f.model, lm.ckpt.config.vocab_size);
    JNAS_CHECK_IO(lm.tokenizer->vocab_size() <= lm.ckpt.config.vocab_size,
                  "{}: tokenizer has {} tokens but the model's vocab_size is {}", f.model,
                  lm.tokenizer->vocab_size(), lm.ckpt.config.vocab_size);
  }
  return lm;
}

std::string copy_tokenizer(const model::Checkpoint& ck, const std::string& model_path,
                           const std::string& out) {
  std::string copied;
  if (ck.format == "llama2c") {
    const fs::path dir = fs::path(model_path).parent_path();
    for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
      if (file_exists((dir / name).string())) {
        copy_file_atomic((dir / name).string(), (fs::path(out) / "tokenizer.bin").string());
        copied = name;
        break;
      }
    }
    Json tc{{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token_id", 1}, {"eos_token_id", 2}};
    write_file_atomic((fs::path(out) / "tokenizer_config.json").string(), tc.dump(2) + "\n");
    return copied;
  }
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                           "tokenizer.bin", "generation_config.json", "special_tokens_map.json"}) {
    const fs::path src = fs::path(model_path) / name;
    if (file_exists(src.string())) {
      copy_file_atomic(src.string(), (fs::path(out) / name).string());
      if (copied.empty()) copied = name;
    }
  }
  return copied;
}

void emit(const std::string& format, const Json& j, const std::function<void()>& text) {
  if (format == "json") {
    std::cout << j.dump() << std::endl;
  } else {
    text();
  }
}

namespace {
std::atomic<bool> g_interrupt{false};
extern "C" void on_interrupt_signal(int sig) {
  g_interrupt.store(true);
  std::signal(sig, SIG_DFL);  // a second signal terminates at once
}
}  // namespace

const std::atomic<bool>& install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt_signal);
  std::signal(SIGTERM, on_interrupt_signal);
  return g_interrupt;
}

}  // namespace jointnas::cli
