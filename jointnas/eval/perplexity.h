// Perplexity under an explicit, documented protocol (docs/cli.md "Perplexity protocols").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jointnas/model/llama.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::eval {

struct PplProtocol {
  // How the file becomes documents:
  //  "paragraphs": split on "\n\n"; a piece longer than 20,000 chars is split on "\n"; pieces that
  //                are only whitespace are dropped (the ref-17m MANIFEST protocol, the default);
  //  "lines":      every non-blank line is a document;
  //  "whole":      the whole file is one document.
  std::string documents = "paragraphs";
  bool add_bos = true;   // BOS before each document
  bool add_eos = true;   // EOS after each document
  int64_t window = 513;  // tokens per window: window - 1 next-token predictions
  int64_t stride = 0;    // 0 = window (non-overlapping); < window scores only the new tail
  int64_t max_windows = 0;  // 0 = all full windows
  int64_t batch = 8;        // windows per forward

  void validate() const;
};

struct PplResult {
  double nll = 0;        // mean next-token NLL in nats
  double ppl = 0;        // exp(nll)
  int64_t tokens = 0;    // scored predictions
  int64_t windows = 0;
  int64_t stream_tokens = 0;
  int64_t documents = 0;
};

// Splits text into documents per protocol.documents.
std::vector<std::string> split_documents(const std::string& text, const std::string& mode);
// Documents -> one token stream with BOS/EOS per the protocol.
std::vector<int64_t> build_stream(const std::vector<std::string>& docs, const tok::Tokenizer& tok,
                                  const PplProtocol& p, int64_t bos_id, int64_t eos_id);

// Scores `stream` with `model`. `progress(done, total)` is called after each batch when set.
PplResult perplexity(const model::LlamaModel& model, const std::vector<int64_t>& stream,
                     const PplProtocol& p,
                     const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace jointnas::eval
