// Does the measured fit time a model as the study's latency stage does? Loads checkpoints and
// builds each one's random-weight twin (what the fit times: a blueprint of the same config and
// layer specs), then times all of them in the same interleaved rounds under a plan, and prints
// each model's fastest round over the first checkpoint's (the share the fit and `bench --models`
// report). Issue 22: on the 2-core CPU VM the fit read models 2-4 % slower than the study's bench.
//
//   fit_timing_bench PLAN ROUNDS CONTEXT CKPT...   (PLAN: fit | bench; CKPT: the original first)
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "jointnas/pipeline/model_loading.h"
#include "jointnas/profile/timing.h"

namespace jp = jointnas::pipeline;
namespace jm = jointnas::model;
namespace pf = jointnas::profile;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s fit|bench ROUNDS CONTEXT CKPT...\n", argv[0]);
    return 2;
  }
  const std::string which = argv[1];
  const int rounds = std::stoi(argv[2]);
  const int64_t context = std::stoll(argv[3]);
  jp::ModelSettings s;
  s.threads = std::getenv("THREADS") != nullptr ? std::atoi(std::getenv("THREADS")) : 1;
  std::vector<std::unique_ptr<jm::LlamaModel>> ms;
  std::vector<std::string> names;
  for (int i = 4; i < argc; ++i) {
    s.model.value = argv[i];
    jp::LoadedModel lm = jp::load_model(s, false);
    const jm::RuntimeOptions ro = lm.model->options();
    ms.push_back(std::make_unique<jm::LlamaModel>(
        jm::LlamaModel::random(lm.model->config(), ro, 7 + static_cast<uint64_t>(i), lm.model->specs())));
    names.push_back(fmt::format("random {}", argv[i]));
    ms.push_back(std::move(lm.model));
    names.push_back(fmt::format("loaded {}", argv[i]));
  }
  c10::InferenceMode guard;
  // The fit's plan (selection.cpp, profile::measure_blueprints) or bench --models' (bench_stage.cpp).
  pf::TimingPlan warm = pf::model_timing_plan(3, 1), plan = pf::model_timing_plan(0, 3);
  warm.measure_ms = 0;
  plan.warmup_ms = 0;
  if (which == "fit") {
    plan.measure_ms = std::max(20.0, 2 * 300.0 / rounds);
  } else {
    plan.warmup = 1;
    plan.measure_ms = 500.0 / rounds;
  }
  std::vector<std::function<double()>> timers;
  for (auto& m : ms) {
    pf::measure_decode(*m, 1, context, warm);
    timers.push_back([&, mp = m.get()] { return pf::measure_decode(*mp, 1, context, plan).stats.median; });
  }
  const auto t = pf::interleaved_rounds(timers, rounds, nullptr);
  // Three estimators of a model's share: fastest round over the reference's fastest, the median of
  // the per-round ratios, and the lower quartile over the reference's lower quartile.
  auto q = [&](size_t i, double f) {
    std::vector<double> v = t[i];
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(f * static_cast<double>(v.size() - 1) + 0.5)];
  };
  auto median_ratio = [&](size_t i) {
    std::vector<double> r;
    for (size_t k = 0; k < t[i].size(); ++k) r.push_back(t[i][k] / t[1][k]);
    std::sort(r.begin(), r.end());
    return r[r.size() / 2];
  };
  for (size_t i = 0; i < ms.size(); ++i) {
    fmt::print("{:.4f} ms  best {:.4f}x  median-ratio {:.4f}x  q25 {:.4f}x  {}\n", q(i, 0), q(i, 0) / q(1, 0),
               median_ratio(i), q(i, 0.25) / q(1, 0.25), names[i]);
  }
  return 0;
}
