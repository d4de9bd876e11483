// Log-likelihood requests the way lm-evaluation-harness scores them (api/model.py _encode_pair
// and loglikelihood, models/huggingface.py _loglikelihood_tokens), batched: several requests per
// forward, right-padded (causal attention never sees the padding), identical inputs run once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jointnas/model/llama.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::eval {

struct LoglikRequest {
  std::vector<int64_t> context;       // BOS + context tokens
  std::vector<int64_t> continuation;  // tokens of (context + continuation) after the context's
};

struct LoglikResult {
  double logprob = 0;   // sum of log p(continuation token | prefix), nats
  bool greedy = false;  // every continuation token is the argmax
};

// lm-eval's tokenization of a (context, continuation) pair: trailing whitespace of the context
// moves to the continuation; whole = enc(context + continuation), ctx = enc(context), both with
// BOS when `bos` >= 0 (HF add_special_tokens); continuation = whole[len(ctx):]. An empty context
// becomes [prefix] (lm-eval's prefix_token_id: BOS, else EOS; `prefix` < 0 means `bos`), or the
// continuation's first token when that already is the prefix.
LoglikRequest encode_request(const tok::Tokenizer& tok, int64_t bos, const std::string& context,
                             const std::string& continuation, int64_t prefix = -1);

// lm-eval's loglikelihood_rolling windows of a token list (utils.get_rolling_token_windows with
// context_len 1, then make_disjoint_window): the first window predicts tokens[0, max_len) after
// [prefix]; each next one predicts up to max_len further tokens with the max_len tokens before
// them as context. Every token is predicted exactly once, each with as much context as fits.
std::vector<LoglikRequest> rolling_windows(const std::vector<int64_t>& tokens, int64_t prefix, int64_t max_len);

struct ScoreOptions {
  int64_t batch = 16;       // distinct inputs per forward
  int64_t max_length = 0;   // 0: the model's max_position_embeddings (lm-eval's max_length)
  std::function<void(int64_t done, int64_t total)> progress;
};

// Scores every request: input = (context + continuation)[-(max_length + 1):][:-1], the last
// len(continuation) positions' log-softmax at the continuation tokens, summed in fp64.
std::vector<LoglikResult> score_requests(const model::LlamaModel& model,
                                         const std::vector<LoglikRequest>& requests,
                                         const ScoreOptions& opts);

}  // namespace jointnas::eval
