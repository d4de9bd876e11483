// Batched continuation log-likelihoods (lm-eval semantics, see loglikelihood.h).
#include "jointnas/eval/loglikelihood.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "jointnas/core/error.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval {
namespace {

std::vector<int64_t> encode(const tok::Tokenizer& tok, int64_t bos, const std::string& s) {
  std::vector<int64_t> out;
  if (bos >= 0) out.push_back(bos);
  for (int32_t id : tok.encode(s)) out.push_back(id);
  return out;
}

}  // namespace

LoglikRequest encode_request(const tok::Tokenizer& tok, int64_t bos, const std::string& context,
                             const std::string& continuation, int64_t prefix) {
  LoglikRequest r;
  if (prefix < 0) prefix = bos;
  if (context.empty()) {
    for (int32_t id : tok.encode(continuation)) r.continuation.push_back(id);
    JNAS_CHECK_CONFIG(!r.continuation.empty(), "empty context and empty continuation");
    if (prefix >= 0 && r.continuation[0] != prefix) {
      r.context = {prefix};
    } else {
      r.context = {r.continuation[0]};
      r.continuation.erase(r.continuation.begin());
    }
    return r;
  }
  // context.rstrip(): Python's Unicode whitespace moves to the continuation.
  const std::string ctx = py::strip(context, std::nullopt, false, true);
  const std::string cont = context.substr(ctx.size()) + continuation;
  std::vector<int64_t> whole = encode(tok, bos, ctx + cont);
  r.context = encode(tok, bos, ctx);
  // lm-eval slices by length even when the context's tokens are not a prefix of the whole's.
  if (whole.size() > r.context.size()) {
    r.continuation.assign(whole.begin() + static_cast<long>(r.context.size()), whole.end());
  }
  return r;
}

std::vector<LoglikRequest> rolling_windows(const std::vector<int64_t>& tokens, int64_t prefix, int64_t max_len) {
  JNAS_CHECK_CONFIG(max_len >= 1, "max_length must be >= 1, got {}", max_len);
  std::vector<LoglikRequest> out;
  if (tokens.empty()) return out;
  const auto n = static_cast<int64_t>(tokens.size());
  auto slice = [&](int64_t b, int64_t e) {
    return std::vector<int64_t>(tokens.begin() + std::max<int64_t>(b, 0), tokens.begin() + e);
  };
  // First window: [prefix] + tokens[:L-1] predicts tokens[:L]; disjoint: context = [prefix].
  const int64_t first = std::min(max_len, n);
  out.push_back({{prefix}, slice(0, first)});
  int64_t predicted = first;
  while (predicted < n) {
    const int64_t len = std::min(n - predicted, max_len);  // pred_len = max_len - context_len + 1
    const int64_t end = predicted + len;
    // Input tokens[end - max_len - 1, end - 1) predicts tokens[end - len, end); the disjoint
    // context is the input without its last len - 1 tokens.
    std::vector<int64_t> input = slice(end - max_len - 1, end - 1);
    input.resize(input.size() - static_cast<size_t>(len - 1));
    out.push_back({std::move(input), slice(end - len, end)});
    predicted += len;
  }
  return out;
}

std::vector<LoglikResult> score_requests(const model::LlamaModel& model,
                                         const std::vector<LoglikRequest>& requests,
                                         const ScoreOptions& opts) {
  JNAS_CHECK_CONFIG(opts.batch >= 1, "batch must be >= 1, got {}", opts.batch);
  const int64_t max_len =
      opts.max_length > 0 ? opts.max_length : model.config().max_position_embeddings;
  JNAS_CHECK_CONFIG(max_len >= 2, "max_length must be >= 2, got {}", max_len);
  // Model inputs, deduplicated: requests whose inputs are identical (MMLU's letters after one
  // context) share one row.
  std::map<std::vector<int64_t>, int64_t> row_of;
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> req_row(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    JNAS_CHECK_CONFIG(!r.continuation.empty(), "request {}: empty continuation", i);
    JNAS_CHECK_CONFIG(static_cast<int64_t>(r.continuation.size()) <= max_len,
                      "request {}: continuation of {} tokens exceeds max_length {}", i,
                      r.continuation.size(), max_len);
    std::vector<int64_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    const size_t keep = std::min<size_t>(all.size(), static_cast<size_t>(max_len) + 1);
    std::vector<int64_t> inp(all.end() - static_cast<long>(keep), all.end() - 1);
    auto [it, fresh] = row_of.emplace(std::move(inp), static_cast<int64_t>(rows.size()));
    if (fresh) rows.push_back(it->first);
    req_row[i] = it->second;
  }
  std::vector<std::vector<size_t>> reqs_of_row(rows.size());
  for (size_t i = 0; i < requests.size(); ++i) reqs_of_row[req_row[i]].push_back(i);
  // Longest first (as lm-eval's Collator), so each batch pads little.
  std::vector<int64_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return rows[a].size() > rows[b].size(); });

  std::vector<LoglikResult> out(requests.size());
  const c10::Device dev = model.options().device;
  c10::InferenceMode inference_mode;
  for (size_t b = 0; b < order.size(); b += opts.batch) {
    const size_t e = std::min(order.size(), b + static_cast<size_t>(opts.batch));
    const int64_t T = static_cast<int64_t>(rows[order[b]].size());
    const int64_t B = static_cast<int64_t>(e - b);
    std::vector<int64_t> ids(static_cast<size_t>(B * T), 0);  // right padding with token 0
    // Positions to read: for request r in batch row j, the last len(cont) positions of its input.
    std::vector<int64_t> flat_pos, targets;
    std::vector<std::pair<size_t, size_t>> spans;  // request -> [begin, end) in flat_pos
    std::vector<size_t> span_req;
    for (int64_t j = 0; j < B; ++j) {
      const auto& inp = rows[order[b + j]];
      std::copy(inp.begin(), inp.end(), ids.begin() + j * T);
      for (size_t ri : reqs_of_row[order[b + j]]) {
        const auto& cont = requests[ri].continuation;
        const int64_t L = static_cast<int64_t>(inp.size());
        const int64_t c = static_cast<int64_t>(cont.size());
        const size_t begin = flat_pos.size();
        for (int64_t k = 0; k < c; ++k) {
          flat_pos.push_back(j * T + (L - c + k));
          targets.push_back(cont[k]);
        }
        spans.emplace_back(begin, flat_pos.size());
        span_req.push_back(ri);
      }
    }
    at::Tensor x = at::tensor(ids, at::kLong).view({B, T}).to(dev);
    at::Tensor logits = model.forward(x);                                   // [B, T, V] fp32
    at::Tensor pos = at::tensor(flat_pos, at::kLong).to(logits.device());  // [N]
    at::Tensor picked = logits.reshape({B * T, -1}).index_select(0, pos);  // [N, V]
    at::Tensor tgt = at::tensor(targets, at::kLong).to(logits.device());   // [N]
    at::Tensor lp = at::log_softmax(picked, -1);
    at::Tensor tok_lp = lp.gather(1, tgt.view({-1, 1})).view({-1}).to(at::kDouble).cpu();
    at::Tensor greedy = lp.argmax(-1).eq(tgt).cpu();
    const double* lpp = tok_lp.data_ptr<double>();
    const bool* gp = greedy.data_ptr<bool>();
    for (size_t s = 0; s < spans.size(); ++s) {
      LoglikResult& r = out[span_req[s]];
      r.greedy = true;
      for (size_t k = spans[s].first; k < spans[s].second; ++k) {
        r.logprob += lpp[k];
        r.greedy = r.greedy && gp[k];
      }
    }
    if (opts.progress) opts.progress(static_cast<int64_t>(e), static_cast<int64_t>(order.size()));
  }
  return out;
}

}  // namespace jointnas::eval
