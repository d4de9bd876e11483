// Helpers shared by the subcommands: output format, device/dtype flags, model loading.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "jointnas/core/json_util.h"
#include "jointnas/model/llama.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::cli {

// Flags every model-running subcommand has.
struct RunFlags {
  std::string model;
  std::string device = "cpu";
  std::string dtype;  // empty: fp32 on cpu, bf16 on cuda
  std::string format = "text";
  int threads = 0;
};

// `output_flag` names the text|json flag ("--format" unless a subcommand needs that name).
void add_run_flags(CLI::App* app, RunFlags& f, bool model_required = true,
                   const std::string& output_flag = "--format");
void add_format_flag(CLI::App* app, std::string& format, const std::string& flag = "--format");
model::RuntimeOptions runtime_options(const RunFlags& f);
// Loads checkpoint + tokenizer (tokenizer optional: nullptr when the directory has none and
// `need_tokenizer` is false).
struct LoadedModel {
  model::Checkpoint ckpt;
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
};
LoadedModel load_model(const RunFlags& f, bool need_tokenizer);
// The tokenizer beside a checkpoint: the model directory itself, or for a llama2.c .bin file the
// tok512.bin / tokenizer.bin in the same folder.
std::unique_ptr<tok::Tokenizer> load_tokenizer_for(const std::string& model_path,
                                                   int64_t vocab_size);

// Copies the tokenizer of the checkpoint at `model_path` into the HF directory `out` (llama2.c:
// tokenizer.bin beside the .bin plus a tokenizer_config.json; HF: the tokenizer files present).
// Returns the name of the main file copied ("" when none).
std::string copy_tokenizer(const model::Checkpoint& ck, const std::string& model_path,
                           const std::string& out);

// SIGINT / SIGTERM set the returned flag (long stages checkpoint and stop with exit 130); a
// second signal gets the default action (immediate termination).
const std::atomic<bool>& install_interrupt_handler();

// Prints `j` as JSON (format == "json") or calls `text()` for the human form.
void emit(const std::string& format, const Json& j, const std::function<void()>& text);

// Registration of each subcommand; the callback runs after parsing.
void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_convert(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_profile(CLI::App& app);
void register_importance(CLI::App& app);
void register_search(CLI::App& app);
void register_finetune(CLI::App& app);
void register_run(CLI::App& app);
void register_arch(CLI::App& app);
void register_pareto(CLI::App& app);
void register_derive(CLI::App& app);

}  // namespace jointnas::cli
