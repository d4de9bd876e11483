#include "jointnas/search/heldout.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"
#include "jointnas/search/head_loss.h"

namespace jointnas::search {

TokenSplit split_heldout(const std::vector<int64_t>& stream, int64_t heldout_windows, int64_t seq_len,
                         int64_t min_train_windows) {
  JNAS_CHECK_CONFIG(heldout_windows > 0 && seq_len > 1 && min_train_windows >= 0,
                    "held-out split: expected windows > 0 and seq_len > 1, got {} windows of {}", heldout_windows,
                    seq_len);
  const int64_t n = static_cast<int64_t>(stream.size());
  const int64_t held = heldout_windows * seq_len;
  JNAS_CHECK_CONFIG(n - held >= min_train_windows * seq_len,
                    "held-out split: {} tokens cannot give {} held-out windows of {} and still {} training windows; "
                    "give more text or hold out fewer windows",
                    n, heldout_windows, seq_len, min_train_windows);
  // Windows spread evenly over the stream, each in the middle of its share: the tail alone is one
  // article of the text (wikitext2_train_5k's last 1,016 tokens are a Simpsons episode's trivia), and
  // on ref-17m its KL and NLL ranked finetuned models against their perplexity on the evaluation text.
  const int64_t total = n / seq_len;  // whole windows; the remainder stays in training
  TokenSplit s;
  s.train.reserve(static_cast<size_t>(n - held));
  s.heldout.reserve(static_cast<size_t>(held));
  int64_t next = 0, taken = 0;
  for (int64_t w = 0; w < total; ++w) {
    const bool hold = taken < heldout_windows && w == (2 * taken + 1) * total / (2 * heldout_windows);
    const auto from = stream.begin() + w * seq_len;
    (hold ? s.heldout : s.train).insert(hold ? s.heldout.end() : s.train.end(), from, from + seq_len);
    if (hold) ++taken;
    next = (w + 1) * seq_len;
  }
  s.train.insert(s.train.end(), stream.begin() + next, stream.end());
  return s;
}

HeldoutSet::HeldoutSet(const std::vector<int64_t>& tokens, int64_t seq_len, int64_t max_windows, int64_t batch)
    : batch_(batch) {
  JNAS_CHECK_CONFIG(seq_len > 1 && batch > 0 && max_windows >= 0,
                    "held-out set: expected seq_len > 1, batch > 0, max_windows >= 0; got {}, {}, {}", seq_len, batch,
                    max_windows);
  int64_t n = static_cast<int64_t>(tokens.size()) / seq_len;
  if (max_windows > 0) n = std::min(n, max_windows);
  JNAS_CHECK_CONFIG(n > 0, "held-out set: {} tokens make no window of {}", tokens.size(), seq_len);
  windows_ = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.begin() + n * seq_len), at::kLong)
                 .view({n, seq_len});
}

HeldoutScore HeldoutSet::evaluate(const Supernet& net, const ArchDist& dist) const {
  at::NoGradGuard no_grad;
  const int64_t n = windows_.size(0), T = windows_.size(1);
  const at::Tensor head = net.lm_head().detach();
  HeadLossOptions lo;
  lo.kd_weight = 1.0;
  lo.ce_weight = 1.0;
  HeldoutScore s;
  double kl = 0, nll = 0, top1 = 0;
  for (int64_t b = 0, i = 0; b < n; b += batch_, ++i) {
    yield_to_timing();
    const at::Tensor ids = windows_.narrow(0, b, std::min(batch_, n - b));
    const int64_t rows = ids.size(0) * (T - 1);
    // Predictions of positions 0 .. T-2 (the last position has no target).
    auto flat = [&](const at::Tensor& h) { return h.narrow(1, 0, T - 1).reshape({rows, h.size(-1)}); };
    if (static_cast<int64_t>(teacher_.size()) <= i) teacher_.push_back(flat(net.teacher_hidden(ids)).contiguous());
    const at::Tensor h = flat(net.hidden(ids, dist));
    const at::Tensor targets = ids.narrow(1, 1, T - 1).reshape({rows});
    const at::Tensor out = head_loss(h, head, teacher_[static_cast<size_t>(i)], targets, lo).to(at::kDouble);
    kl += out[1].item<double>() * static_cast<double>(rows);
    nll += out[2].item<double>() * static_cast<double>(rows);
    top1 += out[3].item<double>() * static_cast<double>(rows);
    s.tokens += rows;
  }
  s.kl = kl / static_cast<double>(s.tokens);
  s.nll = nll / static_cast<double>(s.tokens);
  s.top1 = top1 / static_cast<double>(s.tokens);
  return s;
}

}  // namespace jointnas::search
