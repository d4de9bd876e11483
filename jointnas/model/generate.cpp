// Generation loop: one prefill forward, then one decode step per token.
#include "jointnas/model/generate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>

#include "jointnas/core/error.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/model/cuda_graph_decoder.h"
#endif

namespace jointnas::model {
namespace {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void sync_device(const LlamaModel& m) {
#ifdef JNAS_WITH_CUDA
  if (m.options().device.is_cuda()) cuda_synchronize();
#endif
}

}  // namespace

int64_t sample_token(const at::Tensor& logits, const GenerateOptions& opts, at::Generator& gen) {
  if (opts.temperature <= 0.0) return logits.argmax().item<int64_t>();
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / opts.temperature, -1);
  auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
  int64_t keep = sorted.numel();
  if (opts.top_k > 0) keep = std::min(keep, opts.top_k);
  if (opts.top_p < 1.0) {
    // Smallest prefix whose mass reaches top_p (the token that crosses the threshold is kept).
    at::Tensor cum = sorted.cumsum(-1);
    int64_t n = cum.lt(opts.top_p).sum().item<int64_t>() + 1;
    keep = std::min(keep, std::max<int64_t>(n, 1));
  }
  at::Tensor p = sorted.narrow(0, 0, keep);
  int64_t pick = at::multinomial(p / p.sum(), 1, false, gen).item<int64_t>();
  return order[pick].item<int64_t>();
}

GenerateResult generate(const LlamaModel& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& opts) {
  JNAS_CHECK_CONFIG(!prompt.empty(), "generate needs at least one prompt token (BOS)");
  JNAS_CHECK_CONFIG(opts.max_new_tokens >= 0, "max-new-tokens must be >= 0, got {}", opts.max_new_tokens);
  const int64_t total = static_cast<int64_t>(prompt.size()) + opts.max_new_tokens;
  JNAS_CHECK_CONFIG(total <= model.config().max_position_embeddings,
                    "prompt ({} tokens) + max-new-tokens ({}) exceeds the model's context of {}",
                    prompt.size(), opts.max_new_tokens, model.config().max_position_embeddings);
  GenerateResult r;
  if (opts.max_new_tokens == 0) return r;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opts.seed);
  KVCache cache = model.new_cache(1, total);
  at::Tensor ids = at::tensor(prompt, at::kLong).view({1, -1});

  double t0 = now_ms();
  at::Tensor logits = model.forward(ids, &cache, /*last_only=*/true);  // [1, 1, V]
  // NaN logits make every argmax 0: the model would "generate" token 0 forever (issue 26).
  if (!at::isfinite(logits).all().item<bool>()) {
    r.non_finite = true;
    return r;
  }
  int64_t next = sample_token(logits.view({-1}).cpu(), opts, gen);
  r.prefill_ms = now_ms() - t0;
  r.ids.push_back(next);
  auto stop = [&](int64_t t) {
    return std::find(opts.stop_ids.begin(), opts.stop_ids.end(), t) != opts.stop_ids.end();
  };

  t0 = now_ms();
#ifdef JNAS_WITH_CUDA
  if (opts.cuda_graph && model.options().device.is_cuda()) {
    CudaGraphDecoder dec(model, cache);
    r.used_cuda_graph = true;
    while (static_cast<int64_t>(r.ids.size()) < opts.max_new_tokens && !stop(next)) {
      at::Tensor lg = dec.step(next, cache.length);  // [1, V] on device
      cache.length += 1;
      next = opts.temperature <= 0.0 ? lg.argmax(-1).item<int64_t>()
                                     : sample_token(lg.view({-1}).to(at::kCPU, at::kFloat), opts, gen);
      r.ids.push_back(next);
      r.decode_steps++;
    }
    sync_device(model);
    r.decode_ms = now_ms() - t0;
    return r;
  }
#endif
  while (static_cast<int64_t>(r.ids.size()) < opts.max_new_tokens && !stop(next)) {
    at::Tensor step = at::full({1, 1}, next, at::kLong);
    logits = model.forward(step, &cache, true);
    next = sample_token(logits.view({-1}).cpu(), opts, gen);
    r.ids.push_back(next);
    r.decode_steps++;
  }
  sync_device(model);
  r.decode_ms = now_ms() - t0;
  return r;
}

}  // namespace jointnas::model
