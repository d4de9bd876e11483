// Windowed next-token NLL over a token stream.
#include "jointnas/eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"

namespace jointnas::eval {
namespace {

bool is_blank(std::string_view s) {
  for (char c : s) {
    if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')) return false;
  }
  return true;
}

std::vector<std::string> split_on(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t i = s.find(sep, start);
    if (i == std::string::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, i - start));
    start = i + sep.size();
  }
}

}  // namespace

void PplProtocol::validate() const {
  JNAS_CHECK_CONFIG(documents == "paragraphs" || documents == "lines" || documents == "whole",
                    "unknown documents mode '{}': expected paragraphs, lines or whole", documents);
  JNAS_CHECK_CONFIG(window >= 2, "window must be >= 2 tokens, got {}", window);
  JNAS_CHECK_CONFIG(stride >= 0 && stride < window + 1, "stride must be in [0, window], got {}", stride);
  JNAS_CHECK_CONFIG(batch >= 1, "batch must be >= 1, got {}", batch);
  JNAS_CHECK_CONFIG(score_first >= 0 && score_first < window - 1,
                    "score_first must be in [0, window - 1), got {} for window {}", score_first,
                    window);
  JNAS_CHECK_CONFIG((score_first == 0 && window_bos_id < 0) || stride == 0 || stride == window,
                    "score_first / window_bos_id need non-overlapping windows (stride 0), got "
                    "stride {}",
                    stride);
}

PplProtocol ppl_protocol(const std::string& name, int64_t context, int64_t bos_id) {
  PplProtocol p;
  if (name == "stream") return p;
  JNAS_CHECK_CONFIG(name == "gptq" || name == "llamacpp",
                    "unknown perplexity protocol '{}': expected stream, gptq or llamacpp", name);
  JNAS_CHECK_CONFIG(context >= 2, "protocol {} needs the model's context, got {}", name, context);
  p.documents = "whole";
  p.add_bos = true;
  p.add_eos = false;
  if (name == "gptq") {
    // GPTQ datautils.get_wikitext2: tokenizer("\n\n".join(test["text"])) adds BOS once;
    // eval: nsamples = numel // seqlen windows of model.seqlen (= max_position_embeddings).
    p.window = context;
  } else {
    // llama.cpp examples/perplexity: n_ctx 512 (its default for published tables), BOS as the
    // first token of every chunk, the first n_ctx / 2 logits of a chunk are context only.
    p.window = std::min<int64_t>(512, context);
    p.window_bos_id = bos_id;
    p.score_first = p.window / 2;
    JNAS_CHECK_CONFIG(bos_id >= 0, "protocol llamacpp needs a BOS token, the tokenizer has none");
  }
  return p;
}

std::vector<std::string> split_documents(const std::string& text, const std::string& mode) {
  std::vector<std::string> pieces;
  if (mode == "whole") {
    pieces = {text};
  } else if (mode == "lines") {
    pieces = split_on(text, "\n");
  } else {
    // The ref-17m MANIFEST protocol. Note wiki.test.raw has no "\n\n" (its empty rows are " \n"),
    // so it becomes one long piece and then one document per non-blank line.
    constexpr size_t kLongDoc = 20000;
    for (auto& p : split_on(text, "\n\n")) {
      if (p.size() > kLongDoc) {
        for (auto& q : split_on(p, "\n")) pieces.push_back(std::move(q));
      } else {
        pieces.push_back(std::move(p));
      }
    }
  }
  std::vector<std::string> docs;
  for (auto& p : pieces) {
    if (!is_blank(p)) docs.push_back(std::move(p));
  }
  return docs;
}

std::vector<int64_t> build_stream(const std::vector<std::string>& docs, const tok::Tokenizer& tok,
                                  const PplProtocol& p, int64_t bos_id, int64_t eos_id) {
  JNAS_CHECK_CONFIG(!p.add_bos || bos_id >= 0, "the protocol adds BOS but the tokenizer has none");
  JNAS_CHECK_CONFIG(!p.add_eos || eos_id >= 0, "the protocol adds EOS but the tokenizer has none");
  std::vector<int64_t> stream;
  for (const auto& d : docs) {
    if (p.add_bos) stream.push_back(bos_id);
    for (int32_t id : tok.encode(d)) stream.push_back(id);
    if (p.add_eos) stream.push_back(eos_id);
  }
  return stream;
}

void check_window(const WindowModel& model, const PplProtocol& p) {
  p.validate();
  JNAS_CHECK_CONFIG(p.window - 1 <= model.context(), "window of {} tokens exceeds the model's context ({} positions)",
                    p.window, model.context());
}

LlamaWindowModel::LlamaWindowModel(const model::LlamaModel& model, const PplProtocol& p,
                                   const model::LlamaModel* teacher)
    : model_(model), teacher_(teacher) {
  check_window(*this, p);  // the protocol and the window before the memory check below
  if (teacher != nullptr) {
    JNAS_CHECK_CONFIG(teacher->config().vocab_size == model.config().vocab_size,
                      "teacher vocabulary {} differs from the model's {}: expected the same "
                      "tokenizer",
                      teacher->config().vocab_size, model.config().vocab_size);
  }
  // One batch of windows must fit, before any text is read (the flags name the fix).
  for (const model::LlamaModel* m : {&model, teacher}) {
    if (m != nullptr) m->check_forward_fits(p.batch, p.window - 1, false, "--window or --batch (eval.window, eval.batch)");
  }
}

WindowScores LlamaWindowModel::score(const at::Tensor& x, const std::vector<int64_t>&) const {
  const int64_t W = x.size(1);
  WindowScores s;
  at::Tensor logits = model_.forward(x.narrow(1, 0, W - 1));      // [n, W-1, V] float32
  at::Tensor target = x.narrow(1, 1, W - 1).to(logits.device());  // [n, W-1]
  s.nll = at::cross_entropy_loss(logits.transpose(1, 2), target, {}, at::Reduction::None);
  if (teacher_ != nullptr) {
    at::Tensor t_logits =
        teacher_->forward(x.narrow(1, 0, W - 1).to(teacher_->options().device)).to(logits.device());
    at::Tensor lp_s = at::log_softmax(logits, -1);    // [n, W-1, V] fp32
    at::Tensor lp_t = at::log_softmax(t_logits, -1);  // [n, W-1, V] fp32
    s.kl = (lp_t.exp() * (lp_t - lp_s)).sum(-1);
    s.same = lp_t.argmax(-1).eq(lp_s.argmax(-1));
  }
  return s;
}

WindowScorer::WindowScorer(const WindowModel& model, const PplProtocol& p)
    : model_(model), p_(p), W_(p.window), S_(p.stride == 0 ? p.window : p.stride) {
  check_window(model, p);
}

bool WindowScorer::full() const { return p_.max_windows > 0 && windows_gathered_ >= p_.max_windows; }

void WindowScorer::add(const int64_t* tokens, size_t n) {
  buf_.insert(buf_.end(), tokens, tokens + n);
  // Window k covers [k*S, k*S + W): gather every complete one, score every full batch.
  while (!full() && next_start_ + W_ <= base_ + static_cast<int64_t>(buf_.size())) {
    ready_.push_back(next_start_);
    next_start_ += S_;
    ++windows_gathered_;
    if (static_cast<int64_t>(ready_.size()) == p_.batch) score(ready_.size());
  }
  // Drop the tokens no window still needs.
  const int64_t keep_from =
      std::min(ready_.empty() ? next_start_ : ready_.front(), base_ + static_cast<int64_t>(buf_.size()));
  if (keep_from > base_) {
    buf_.erase(buf_.begin(), buf_.begin() + (keep_from - base_));
    base_ = keep_from;
  }
}

void WindowScorer::score(size_t n_windows) {
  yield_to_timing();
  const int64_t W = W_, S = S_;
  const at::Tensor all = at::from_blob(buf_.data(), {static_cast<int64_t>(buf_.size())}, at::kLong);
  std::vector<at::Tensor> rows;
  for (size_t i = 0; i < n_windows; ++i) rows.push_back(all.narrow(0, ready_[i] - base_, W));
  at::Tensor x = at::stack(rows);                                   // [n, W], a copy
  if (p_.window_bos_id >= 0) x.select(1, 0).fill_(p_.window_bos_id);  // stack copied: safe
  // Window i (in the stream) scores all W-1 predictions when it is the first; later ones only the
  // predictions not scored before (the last S when S < W; all W-1 when S == W). With score_first
  // (llama.cpp) every window scores its last W-1-score_first predictions.
  std::vector<int64_t> first(n_windows);
  for (size_t r = 0; r < n_windows; ++r) {
    const int64_t i = windows_done_ + static_cast<int64_t>(r);
    first[r] = W - 1 - ((i == 0 || S >= W) ? W - 1 - p_.score_first : S);
  }
  const WindowScores s = model_.score(x, first);
  has_teacher_ = s.kl.defined();
  for (size_t r = 0; r < n_windows; ++r) {
    const int64_t scored = W - 1 - first[r];
    const auto row = static_cast<int64_t>(r);
    total_ += s.nll[row].narrow(0, first[r], scored).to(at::kDouble).sum().item<double>();
    if (has_teacher_) {
      kl_total_ += s.kl[row].narrow(0, first[r], scored).to(at::kDouble).sum().item<double>();
      agree_ += s.same[row].narrow(0, first[r], scored).sum().item<int64_t>();
    }
    count_ += scored;
  }
  windows_done_ += static_cast<int64_t>(n_windows);
  ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(n_windows));
}

PplResult WindowScorer::finish(int64_t stream_tokens) {
  if (!ready_.empty()) score(ready_.size());
  JNAS_CHECK_CONFIG(windows_done_ > 0, "text too short: {} tokens, need at least one window of {}", stream_tokens,
                    W_);
  PplResult r;
  r.nll = total_ / static_cast<double>(count_);
  r.ppl = std::exp(r.nll);
  r.tokens = count_;
  r.windows = windows_done_;
  r.stream_tokens = stream_tokens;
  if (has_teacher_) {
    r.has_teacher = true;
    r.kl_teacher = kl_total_ / static_cast<double>(count_);
    r.top1_agreement = static_cast<double>(agree_) / static_cast<double>(count_);
  }
  return r;
}

PplResult perplexity(const model::LlamaModel& model, const std::vector<int64_t>& stream,
                     const PplProtocol& p, const std::function<void(int64_t, int64_t)>& progress,
                     const model::LlamaModel* teacher) {
  const LlamaWindowModel runtime(model, p, teacher);
  WindowScorer scorer(runtime, p);
  c10::InferenceMode inference_mode;  // no autograd records, no version counters
  // The windows there will be, for progress: starts 0, S, 2S, ... while start + W <= size.
  const int64_t W = p.window, S = p.stride == 0 ? p.window : p.stride;
  const auto n = static_cast<int64_t>(stream.size());
  int64_t total = n >= W ? (n - W) / S + 1 : 0;
  if (p.max_windows > 0) total = std::min(total, p.max_windows);
  // Fed a batch's worth at a time so that progress is reported per batch.
  const size_t step = static_cast<size_t>(std::max<int64_t>(S * p.batch, 1));
  int64_t reported = 0;
  for (size_t at = 0; at < stream.size() && !scorer.full(); at += step) {
    scorer.add(stream.data() + at, std::min(step, stream.size() - at));
    if (progress && scorer.windows_scored() != reported) {
      reported = scorer.windows_scored();
      progress(reported, total);
    }
  }
  PplResult r = scorer.finish(n);
  if (progress && r.windows != reported) progress(r.windows, total);
  return r;
}

}  // namespace jointnas::eval
