// Timing on the device (see timing.h).
#include "jointnas/profile/timing.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "jointnas/core/error.h"
#ifdef JNAS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "jointnas/model/cuda_graph_decoder.h"
#endif

namespace jointnas::profile {

TimingPlan model_timing_plan(int warmup, int repeats) {
  TimingPlan p;
  p.warmup = warmup;
  p.repeats = repeats;
  p.warmup_ms = 200;
  p.measure_ms = 500;
  return p;
}

TimingStats time_ms(const c10::Device& device, const std::function<void()>& fn, const TimingPlan& plan) {
  JNAS_CHECK_CONFIG(plan.repeats >= 1 && plan.warmup >= 0, "timing needs >= 1 repeat and >= 0 warm-up calls");
  [[maybe_unused]] const bool cuda = device.is_cuda();
  auto sync = [&] {
#ifdef JNAS_WITH_CUDA
    if (cuda) C10_CUDA_CHECK(cudaDeviceSynchronize());
#endif
  };
  using clock = std::chrono::steady_clock;
  const auto w0 = clock::now();
  for (int i = 0; i < plan.warmup || std::chrono::duration<double, std::milli>(clock::now() - w0).count() < plan.warmup_ms;
       ++i) {
    fn();
    sync();
  }
  std::vector<double> s;
  double total = 0;
  while ((static_cast<int>(s.size()) < plan.repeats || total < plan.measure_ms) &&
         static_cast<int>(s.size()) < TimingPlan::kMaxSamples) {
    // In chunks, so that a CUDA call is timed by events without a host round trip per decision.
    const int n = std::max(1, std::min(plan.repeats, TimingPlan::kMaxSamples - static_cast<int>(s.size())));
    std::vector<double> chunk;
#ifdef JNAS_WITH_CUDA
    if (cuda) model::cuda_time_ms(fn, 0, n, &chunk);
#endif
    if (!cuda) {
      for (int i = 0; i < n; ++i) {
        const auto t0 = clock::now();
        fn();
        chunk.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
      }
    }
    for (double v : chunk) total += v;
    s.insert(s.end(), chunk.begin(), chunk.end());
  }
  std::sort(s.begin(), s.end());
  auto q = [&](double f) { return s[static_cast<size_t>(f * static_cast<double>(s.size() - 1) + 0.5)]; };
  return {q(0.5), q(0.1), q(0.9), static_cast<int>(s.size())};
}

std::vector<std::vector<double>> interleaved_rounds(const std::vector<std::function<double()>>& timers, int rounds,
                                                   const std::function<void(int)>& after_round) {
  const size_t n = timers.size();
  std::vector<std::vector<double>> t(n);
  for (int k = 0; k < rounds; ++k) {
    for (size_t j = 0; j < n; ++j) {
      const size_t i = (j + static_cast<size_t>(k)) % n;
      t[i].push_back(timers[i]());
    }
    if (after_round) after_round(k);
  }
  return t;
}

TimingStats time_ms(const c10::Device& device, const std::function<void()>& fn, int warmup, int repeats) {
  TimingPlan p;
  p.warmup = warmup;
  p.repeats = repeats;
  return time_ms(device, fn, p);
}

ModelTiming measure_decode(const model::LlamaModel& m, int64_t batch, int64_t context,
                           const TimingPlan& plan, bool eager) {
  c10::InferenceMode guard;
  const auto& cfg = m.config();
  const c10::Device dev = m.options().device;
  JNAS_CHECK_CONFIG(context >= 1 && context < cfg.max_position_embeddings, "context {} out of range", context);
  model::KVCache cache = m.new_cache(batch, context + 1);
  m.forward(at::randint(0, cfg.vocab_size, {batch, context}, at::kLong), &cache, true);  // real K/V
  const at::Tensor tok = at::randint(0, cfg.vocab_size, {batch, 1}, at::kLong).to(dev);
  ModelTiming t;
#ifdef JNAS_WITH_CUDA
  if (dev.is_cuda() && !eager) {
    model::CudaGraphDecoder dec(m, cache);
    dec.step(1, context);
    t.stats = time_ms(dev, [&] { dec.replay(); }, plan);
    t.cuda_graph = true;
    return t;
  }
#endif
  (void)eager;
  t.stats = time_ms(dev, [&] {
    cache.length = context;
    m.forward(tok, &cache, true);
  }, plan);
  return t;
}

ModelTiming measure_prefill(const model::LlamaModel& m, int64_t batch, int64_t tokens, const TimingPlan& plan,
                            bool eager) {
  c10::InferenceMode guard;
  const auto& cfg = m.config();
  JNAS_CHECK_CONFIG(tokens >= 1 && tokens <= cfg.max_position_embeddings, "prefill {} out of range", tokens);
  model::KVCache cache = m.new_cache(batch, tokens);
  const at::Tensor ids = at::randint(0, cfg.vocab_size, {batch, tokens}, at::kLong).to(m.options().device);
  ModelTiming t;
#ifdef JNAS_WITH_CUDA
  if (m.options().device.is_cuda() && !eager) {
    m.forward(ids, &cache, true);  // checks the ids once; the captured call does not
    model::CudaGraphCall g([&] {
      cache.length = 0;
      m.prefill_static(ids, cache);
    });
    t.stats = time_ms(m.options().device, [&] { g.replay(); }, plan);
    t.cuda_graph = true;
    return t;
  }
#endif
  (void)eager;
  t.stats = time_ms(m.options().device, [&] {
    cache.length = 0;
    m.forward(ids, &cache, true);
  }, plan);
  return t;
}

void reset_peak_memory(const c10::Device& device) {
#ifdef JNAS_WITH_CUDA
  if (device.is_cuda()) {
    // The caching allocator initialises lazily; its stats calls reject a device before the
    // first allocation ("Invalid device argument").
    (void)at::empty({1}, at::TensorOptions().device(device));
    C10_CUDA_CHECK(cudaDeviceSynchronize());
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
  }
#endif
  (void)device;
}

int64_t peak_memory(const c10::Device& device) {
#ifdef JNAS_WITH_CUDA
  if (device.is_cuda()) {
    C10_CUDA_CHECK(cudaDeviceSynchronize());
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  }
#endif
  (void)device;
  return -1;
}

}  // namespace jointnas::profile
