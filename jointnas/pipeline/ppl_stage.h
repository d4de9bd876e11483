// The `eval ppl` stage: perplexity of a text file under an explicit protocol (docs/eval.md),
// optionally against a teacher (KL and top-1 agreement).
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

// The protocol: a named preset, and explicit values on top of it (0, -1 or "": the preset's).
struct PplSettings {
  std::string protocol = "stream";
  std::string documents;  // "": the preset's
  bool no_bos = false, no_eos = false;
  int64_t window = 0;     // 0: the preset's (stream: 513)
  int64_t stride = -1;    // -1: the preset's (0 = non-overlapping)
  int64_t max_windows = 0;
  int64_t batch = 8;
};
template <class V>
void fields(V& v, PplSettings& s) {
  v(opt::Key{"protocol", "stream (documents, BOS/EOS, window 513) | gptq (whole text, BOS once, windows of the model's "
                         "context) | llamacpp (n_ctx 512, BOS per window, second half scored); explicit values "
                         "override the preset (docs/eval.md)"},
    s.protocol, opt::Choices{"stream", "gptq", "llamacpp"});
  v(opt::Key{"documents", "paragraphs | lines | whole (default: the protocol's)"}, s.documents,
    opt::Choices{"", "paragraphs", "lines", "whole"});
  v(opt::Key{"no_bos", "Do not put BOS before each document"}, s.no_bos);
  v(opt::Key{"no_eos", "Do not put EOS after each document"}, s.no_eos);
  v(opt::Key{"window", "Tokens per window, window - 1 predictions (0: the protocol's)"}, s.window,
    opt::in<int64_t>(0, 1 << 24));
  v(opt::Key{"stride", "Window step (0 = window: non-overlapping; -1: the protocol's)"}, s.stride,
    opt::in<int64_t>(-1, 1 << 24));
  v(opt::Key{"max_windows", "Score only the first N windows (0 = all)"}, s.max_windows, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"batch", "Windows per forward pass"}, s.batch, opt::in<int64_t>(1, 1 << 16));
}

struct PplOptions {
  ModelSettings run{{}, "cpu", "", 0, false};  // the model may come as the positional argument
  opt::Path text, teacher;
  PplSettings ppl;
  // "llama.cpp": --model is a GGUF file, tokenized and run by libllama on the CPU (issue 25).
  std::string runtime = "jointnas";
};
template <class V>
void fields(V& v, PplOptions& o) {
  fields(v, o.run);
  v(opt::Key{"text", "UTF-8 text file", nullptr, nullptr, true}, o.text);
  v(opt::Key{"teacher", "Reference model (same tokenizer): adds KL(teacher || model) and top-1 agreement"}, o.teacher);
  fields(v, o.ppl);
  v(opt::Key{"runtime", "jointnas | llama.cpp: score a GGUF --model with its own tokenizer through libllama on the "
                        "CPU, same protocol (--threads, 0 = every core; docs/llamacpp.md)"},
    o.runtime, opt::Choices{"jointnas", "llama.cpp"});
}

// Scores the text, streamed in bounded memory; returns {nll, ppl, tokens, windows, stream_tokens,
// documents, text_complete, protocol, teacher?} (--runtime llama.cpp: also runtime, threads and
// llama.cpp's description of the model). With max_windows the file is read only as far as
// those windows need: stream_tokens and documents then count what was read (text_complete false).
Json run_ppl(const PplOptions& o);

// The window `s` resolves to for a model with `context` positions (for checks before a run).
int64_t ppl_window(const PplSettings& s, int64_t context);

}  // namespace jointnas::pipeline
