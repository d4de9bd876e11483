// llama.cpp as a runtime of the tool (issue 25): load a GGUF through libllama, time its decode
// step and prefill the way llama-bench does, score windows of text (next-token NLL, for
// `eval ppl --runtime llama.cpp`), and quantize a GGUF with llama-quantize's presets.
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
// (mmap, CPU weight repacking on), run on `threads` threads (0: every core). Throws IoError
// (exit 3) naming the path when the file is absent or libllama cannot load it.
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
  int64_t bos_id() const;  // -1 when the vocabulary has none
  int64_t eos_id() const;
  bool add_bos() const;    // the vocabulary's add_bos_token
  int threads() const { return threads_; }

  // A timer of one decode step at `context`: its KV cache (f16, llama-bench's default) is filled
  // with `context` random tokens once; every call decodes one token at position `context`, then
  // removes that position again, and returns the step's wall time in ms.
  std::function<double()> decode_timer(int64_t context);
  // A timer of a prefill of `tokens` random tokens (the first BOS) into an empty cache, one
  // llama_decode (n_batch = n_ubatch = tokens), as llama-bench's `-p N`; returns ms.
  std::function<double()> prefill_timer(int64_t tokens);

  // Token ids of `text` (the GGUF's own tokenizer; add_bos as the model's metadata says).
  std::vector<int32_t> tokenize(const std::string& text, bool add_special) const;
  // The ids of `text` when it continues a longer text at a cut before a space (tok::ChunkedEncoder):
  // tokenize(text, false) without the dummy-prefix space a SentencePiece vocabulary with
  // add_space_prefix puts before a text (llama-vocab.cpp), so that the pieces' ids concatenate to
  // the whole text's.
  std::vector<int32_t> tokenize_continuation(const std::string& text) const;
  // ids -> text (llama_detokenize); special tokens left out when skip_special.
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special) const;
  // Logits [ids.size() * n_vocab] of every position of one sequence in one batch, fp32 KV cache,
  // no flash attention (the reference path of tests and of perplexity).
  // It allocates ids.size() x n_vocab floats and a context of ids.size() positions per call: for
  // short sequences; windows of text go through window_nll.
  std::vector<float> logits(const std::vector<int32_t>& ids) const;
  // A scorer of windows of up to `window` tokens, one sequence each, for perplexity: one
  // llama_context of `window` positions kept across calls (fp32 KV cache, no flash attention,
  // n_ubatch 512), its cache cleared before each window. scorer(ids, first) returns
  // nll[j] = -log softmax(logits at position j)[ids[j + 1]] for j in [first, ids.size() - 1) and 0
  // before `first`; logits are asked of llama.cpp only for those positions and reduced one
  // position at a time (max in fp32, sum of exp in double, as llama.cpp's perplexity tool), so the
  // memory is one window's outputs at most, never windows x vocabulary. ConfigError when a window
  // exceeds `window` or the model's n_ctx_train + 1.
  using WindowNll = std::function<std::vector<double>(const std::vector<int32_t>& ids, int64_t first)>;
  WindowNll window_nll(int64_t window) const;

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
