// llama.cpp as a runtime of the tool (issue 25): load a GGUF through libllama, time its decode
// step and prefill the way llama-bench does, and quantize a GGUF with llama-quantize's presets.
// llama.h stays inside llamacpp.cpp; without llama.cpp (JNAS_HAVE_LLAMA_CPP off) every entry
// point throws a ConfigError (exit 2) saying to run scripts/setup_llama_cpp.sh.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace jointnas::llamacpp {

// Whether this build links libllama (scripts/setup_llama_cpp.sh, then reconfigure).
bool available();
// The pinned version ("0.3.36").
std::string version();
// Starts libllama's backends once and routes llama.cpp's and ggml's log lines: errors are kept for
// this tool's messages, the rest dropped (the llama.cpp entry points call it themselves).
void init();

// One GGUF loaded by libllama on the CPU, with the default model parameters llama-bench uses
// (mmap, CPU weight repacking on). Throws IoError (exit 3) naming the path when the file is
// absent or libllama cannot load it.
class Model {
 public:
  Model(const std::string& gguf, int threads);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& path() const;
  int64_t params() const;      // llama_model_n_params
  int64_t bytes() const;       // llama_model_size: the tensors' bytes
  std::string description() const;  // llama_model_desc, e.g. "llama ?B Q8_0"
  int64_t n_ctx_train() const;
  int64_t n_vocab() const;

  // A timer of one decode step at `context`: its KV cache (f16, llama-bench's default) is filled
  // with `context` random tokens once; every call decodes one token at position `context`, then
  // removes that position again, and returns the step's wall time in ms.
  std::function<double()> decode_timer(int64_t context);
  // A timer of a prefill of `tokens` random tokens (the first BOS) into an empty cache, one
  // llama_decode (n_batch = n_ubatch = tokens), as llama-bench's `-p N`; returns ms.
  std::function<double()> prefill_timer(int64_t tokens);

  // Token ids of `text` (the GGUF's own tokenizer; add_bos as the model's metadata says).
  std::vector<int32_t> tokenize(const std::string& text, bool add_special) const;
  // Logits [ids.size() * n_vocab] of every position of one sequence in one batch, fp32 KV cache,
  // no flash attention (the reference path of tests and of perplexity).
  std::vector<float> logits(const std::vector<int32_t>& ids) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  int threads_;
};

// llama-quantize's presets this tool offers, with llama.cpp's ftype names.
struct Preset {
  const char* name;  // "Q4_K_M"
  int ftype;         // LLAMA_FTYPE_MOSTLY_*
  const char* what;  // llama-quantize's description
};
const std::vector<Preset>& presets();
const Preset& find_preset(const std::string& name);  // ConfigError listing them otherwise

// llama_model_quantize(in -> out) with a preset, as `llama-quantize IN OUT PRESET`. Refuses `out`
// equal to `in` (ConfigError) and an unreadable input (IoError). Returns the output's bytes.
int64_t quantize(const std::string& in, const std::string& out, const std::string& preset, int threads);

}  // namespace jointnas::llamacpp
