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
  // llama.cpp's perplexity tool: the first token of every window is replaced by this id (>= 0),
  // and only predictions from index `score_first` of each window on are scored (its n_ctx / 2).
  // Both need non-overlapping windows (stride 0).
  int64_t window_bos_id = -1;
  int64_t score_first = 0;

  void validate() const;
};

// Named protocols (docs/eval.md). `context` is the model's max_position_embeddings.
//  "stream": the defaults above (the ref-17m MANIFEST protocol: paragraphs, BOS/EOS, window 513).
//  "gptq":   GPTQ's datautils / eval (Frantar et al. 2022, and SparseGPT, Wanda, AWQ after it):
//            the whole file is one document tokenized once with BOS and no EOS, cut into
//            non-overlapping windows of the model's context; every window scores its
//            window - 1 next-token predictions, the last partial window is dropped.
//  "llamacpp": llama.cpp's `perplexity` tool: the whole file with BOS, windows of n_ctx = 512
//            tokens, each window's first token replaced by BOS, only the second half scored.
// Throws ConfigError for an unknown name.
PplProtocol ppl_protocol(const std::string& name, int64_t context, int64_t bos_id);

struct PplResult {
  double nll = 0;        // mean next-token NLL in nats
  double ppl = 0;        // exp(nll)
  int64_t tokens = 0;    // scored predictions
  int64_t windows = 0;
  int64_t stream_tokens = 0;
  int64_t documents = 0;
  // Teacher comparison over the same scored predictions (only when a teacher is given):
  // mean KL(teacher || model) in nats and the fraction of positions whose argmax agrees.
  bool has_teacher = false;
  double kl_teacher = 0;
  double top1_agreement = 0;
};

// Splits text into documents per protocol.documents.
std::vector<std::string> split_documents(const std::string& text, const std::string& mode);
// Documents -> one token stream with BOS/EOS per the protocol.
std::vector<int64_t> build_stream(const std::vector<std::string>& docs, const tok::Tokenizer& tok,
                                  const PplProtocol& p, int64_t bos_id, int64_t eos_id);

// The next-token NLL of a batch of windows as one runtime computes it: jointnas's own
// (LlamaWindowModel below) or llama.cpp's (pipeline/ppl_llamacpp.cpp). WindowScorer decides which
// windows there are and which of their predictions count; a WindowModel only evaluates them.
struct WindowScores {
  at::Tensor nll;   // [n, W-1] next-token NLL in nats (fp32 or fp64), prediction j = token j+1
  at::Tensor kl;    // [n, W-1] KL(teacher || model); undefined without a teacher
  at::Tensor same;  // [n, W-1] bool: the teacher's argmax is the model's; undefined without one
};
class WindowModel {
 public:
  virtual ~WindowModel() = default;
  // Positions the model attends over: a window may hold context + 1 tokens (context inputs).
  virtual int64_t context() const = 0;
  // `windows` [n, W] int64 on the CPU (first tokens already replaced per the protocol). Only the
  // predictions from first[r] on of row r are read, so a runtime may leave the others out.
  virtual WindowScores score(const at::Tensor& windows, const std::vector<int64_t>& first) const = 0;
};

// Throws ConfigError when the protocol is invalid or its window exceeds the model's positions.
void check_window(const WindowModel& model, const PplProtocol& p);

// jointnas's runtime: a batch of windows in one forward, cross entropy in fp32 (and the teacher's
// KL and top-1 agreement). Throws ConfigError when the teacher's vocabulary differs or one batch
// of windows (p.batch x p.window) does not fit in memory.
class LlamaWindowModel : public WindowModel {
 public:
  LlamaWindowModel(const model::LlamaModel& model, const PplProtocol& p, const model::LlamaModel* teacher = nullptr);
  int64_t context() const override { return model_.config().max_position_embeddings; }
  WindowScores score(const at::Tensor& windows, const std::vector<int64_t>& first) const override;

 private:
  const model::LlamaModel& model_;
  const model::LlamaModel* teacher_;
};

// Scores windows of a token stream as the tokens arrive: the windows, their batches and their
// order are those of perplexity() on the whole stream, so the result is the same bit for bit,
// while only the tokens of one batch of windows are held. Used by perplexity() and
// perplexity_of_file() (text_stream.h), whatever the runtime.
class WindowScorer {
 public:
  // check_window(model, p) first.
  WindowScorer(const WindowModel& model, const PplProtocol& p);
  // Appends tokens to the stream and scores every batch of windows that is complete.
  void add(const int64_t* tokens, size_t n);
  // max_windows windows are gathered: more tokens are not needed.
  bool full() const;
  int64_t windows_scored() const { return windows_done_; }
  // Scores the last, partial batch and returns the result; `stream_tokens` is the length of the
  // stream read. Throws ConfigError when the stream held no window ("text too short").
  PplResult finish(int64_t stream_tokens);

 private:
  void score(size_t n_windows);
  const WindowModel& model_;
  PplProtocol p_;
  int64_t W_, S_;
  std::vector<int64_t> buf_;    // stream tokens [base_, base_ + buf_.size())
  int64_t base_ = 0;
  int64_t next_start_ = 0;      // start of the next window not yet gathered
  std::vector<int64_t> ready_;  // starts of gathered windows waiting for their batch
  int64_t windows_gathered_ = 0, windows_done_ = 0;
  double total_ = 0.0, kl_total_ = 0.0;
  int64_t count_ = 0, agree_ = 0;
  bool has_teacher_ = false;
};

// Scores `stream` with `model`. `progress(done, total)` is called after each batch when set.
// With a `teacher` (same vocabulary; e.g. the uncompressed model) the result also carries
// KL(teacher || model) and top-1 agreement over exactly the predictions that are scored.
PplResult perplexity(const model::LlamaModel& model, const std::vector<int64_t>& stream,
                     const PplProtocol& p,
                     const std::function<void(int64_t, int64_t)>& progress = {},
                     const model::LlamaModel* teacher = nullptr);

}  // namespace jointnas::eval
