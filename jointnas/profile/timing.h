// Timing on the device: a call timed under a TimingPlan (CUDA events on the GPU, a steady clock on
// the CPU), a whole model's decode step or prefill timed as the runtime runs it, and the caching
// allocator's peak memory. Shared by the profiler's table entries, `jointnas bench` and the
// calibration's end-to-end runs (profile/calibrate.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <c10/core/Device.h>

#include "jointnas/model/llama.h"

namespace jointnas::profile {

struct TimingStats {
  double median = 0, p10 = 0, p90 = 0;
  int samples = 0;
};
// How long to time: at least `warmup` untimed calls and `warmup_ms` of wall time spent in them
// (clocks ramped up, allocator and library caches warm), then at least `repeats` timed calls whose
// samples add up to at least `measure_ms` (capped at kMaxSamples). The time floors matter for
// small, launch-bound calls: ten eager prefills of a 17M model after two warm-ups measured one
// model at 0.88 to 1.55 ms (docs/results.md, issue 8).
struct TimingPlan {
  int warmup = 3;
  int repeats = 20;
  double warmup_ms = 0;
  double measure_ms = 0;
  static constexpr int kMaxSamples = 20000;
};
// The plan for end-to-end model timings (bench, the profile's calibration): the same on both so
// that a calibration fitted to one predicts the other.
TimingPlan model_timing_plan(int warmup, int repeats);

// Times `fn` on `device` (CUDA events on the GPU, a steady clock around a synchronous call on the
// CPU).
TimingStats time_ms(const c10::Device& device, const std::function<void()>& fn, const TimingPlan& plan);
TimingStats time_ms(const c10::Device& device, const std::function<void()>& fn, int warmup,
                    int repeats);

// Interleaved rounds: every timer runs once per round, in an order rotated by the round so that
// no timer is always first; times[i][k] is timer i's result in round k. A slow spell of a shared
// host then falls on the timers of one round alike (the calibration, the measured fit and
// `bench --models` time this way). `after_round(k)` runs after round k (progress).
std::vector<std::vector<double>> interleaved_rounds(const std::vector<std::function<double()>>& timers, int rounds,
                                                   const std::function<void(int)>& after_round = {});

// End-to-end timings of a model as the runtime runs it (the closed loop of the cost model).
// Decode: one token at `context` (the cache filled by a real prefill); prefill: `tokens` tokens
// into an empty cache, last position scored. Both captured in a CUDA graph on the GPU unless
// `eager`: an eager prefill of a small model is bound by kernel launches on the host, and its
// latency moved by up to 1.8x between processes on a shared host (docs/results.md, issue 8).
struct ModelTiming {
  TimingStats stats;
  bool cuda_graph = false;
};
ModelTiming measure_decode(const model::LlamaModel& m, int64_t batch, int64_t context,
                           const TimingPlan& plan, bool eager = false);
ModelTiming measure_prefill(const model::LlamaModel& m, int64_t batch, int64_t tokens, const TimingPlan& plan,
                            bool eager = false);

// Peak of the caching allocator's allocated bytes since the last reset (CUDA; -1 elsewhere).
void reset_peak_memory(const c10::Device& device);
int64_t peak_memory(const c10::Device& device);

}  // namespace jointnas::profile
