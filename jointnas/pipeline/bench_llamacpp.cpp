// `bench --runtime llama.cpp`: GGUF files timed through libllama on the CPU (issue 25), in the
// interleaved rounds of `bench --models` (bench_stage.h): every model loaded and warmed up once,
// then R rounds in a rotating order, each timing every (model, shape) briefly.
#include <algorithm>
#include <functional>
#include <thread>

#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"
#include "jointnas/core/log.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/pipeline/bench_stage.h"
#include "jointnas/profile/timing.h"

namespace jointnas::pipeline {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Calls `step` at least `calls` times and until the calls add up to `min_ms`; the median call.
double time_calls(const std::function<double()>& step, int64_t calls, double min_ms) {
  std::vector<double> t;
  double sum = 0;
  while (static_cast<int64_t>(t.size()) < calls || sum < min_ms) {
    t.push_back(step());
    sum += t.back();
    if (t.size() > 1000000) break;
  }
  return t.empty() ? 0.0 : median(t);
}

}  // namespace

Json run_bench_llamacpp(const BenchOptions& o) {
  JNAS_CHECK_CONFIG(o.run.model.empty() != o.models.empty(),
                    "bench --runtime llama.cpp: give one GGUF (--model FILE.gguf) or several (--models A.gguf,B.gguf)");
  JNAS_CHECK_CONFIG(!o.random_weights, "bench --runtime llama.cpp times GGUF files, not --random-weights");
  JNAS_CHECK_CONFIG(o.batch == 1, "bench --runtime llama.cpp: batch 1 only (one sequence, as llama-bench)");
  JNAS_CHECK_CONFIG(o.run.device == "cpu", "bench --runtime llama.cpp runs on the CPU (this build's libllama)");
  JNAS_CHECK_CONFIG(o.weight_format.empty(), "bench --runtime llama.cpp: a GGUF carries its own types (no --weight-format)");
  const std::vector<std::string> paths = o.models.empty() ? std::vector<std::string>{o.run.model.str()} : o.models;
  const int threads = o.run.threads > 0 ? static_cast<int>(o.run.threads)
                                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<BenchShape> shapes = bench_shapes(o, "bench --runtime llama.cpp");

  std::vector<std::unique_ptr<llamacpp::Model>> ms;
  for (const std::string& p : paths) {
    ms.push_back(std::make_unique<llamacpp::Model>(p, threads));
    JNAS_LOG_INFO("[bench] llama.cpp loaded {}: {} ({:.2f} M params, {:.2f} MB)", p, ms.back()->description(),
                  ms.back()->params() / 1e6, ms.back()->bytes() / 1e6);
  }
  const int rounds = static_cast<int>(o.rounds);
  const int64_t calls = std::max<int64_t>(3, o.timing.repeats / rounds);
  const double round_ms = o.timing.min_time_ms / rounds;
  // One timer per (model, shape), index i * shapes + si; each warmed up once first.
  std::vector<std::function<double()>> timers;
  for (size_t i = 0; i < ms.size(); ++i) {
    for (const BenchShape& sh : shapes) {
      std::function<double()> step = sh.kind[0] == 'd' ? ms[i]->decode_timer(sh.n) : ms[i]->prefill_timer(sh.n);
      time_calls(step, std::max<int64_t>(1, o.timing.warmup), o.timing.min_warmup_ms);
      timers.push_back([step, calls, round_ms] { return time_calls(step, calls, round_ms); });
    }
  }
  const FileLock quiet(timing_lock_path());  // other jointnas processes pause meanwhile
  const std::vector<std::vector<double>> flat = profile::interleaved_rounds(timers, rounds, [&](int r) {
    JNAS_LOG_INFO("[bench] round {}/{} of {} GGUF models", r + 1, rounds, ms.size());
  });
  auto at = [&](size_t si, size_t i) -> const std::vector<double>& { return flat[i * shapes.size() + si]; };
  Json models = Json::array();
  for (size_t i = 0; i < ms.size(); ++i) {
    Json m{{"model", paths[i]},           {"description", ms[i]->description()}, {"params", ms[i]->params()},
           {"weight_bytes", ms[i]->bytes()}, {"decode", Json::array()},          {"prefill", Json::array()}};
    for (size_t si = 0; si < shapes.size(); ++si) {
      std::vector<double> ratio;
      for (int r = 0; r < rounds; ++r) ratio.push_back(at(si, i)[r] / at(si, 0)[r]);
      const double best = *std::min_element(at(si, i).begin(), at(si, i).end());
      const double first_best = *std::min_element(at(si, 0).begin(), at(si, 0).end());
      const bool decode = shapes[si].kind[0] == 'd';
      const double ms_med = median(at(si, i));
      m[shapes[si].kind].push_back(Json{{decode ? "context" : "tokens", shapes[si].n},
                                        {"ms", ms_med},
                                        {"ms_best", best},
                                        {"rounds_ms", at(si, i)},
                                        {"tok_s", (decode ? 1.0 : static_cast<double>(shapes[si].n)) * 1000.0 / ms_med},
                                        {"ratio_to_first", median(ratio)},
                                        {"ratio_min", *std::min_element(ratio.begin(), ratio.end())},
                                        {"ratio_max", *std::max_element(ratio.begin(), ratio.end())},
                                        {"rounds_ratio", ratio},
                                        {"best_ratio_to_first", best / first_best}});
    }
    models.push_back(m);
  }
  return Json{{"runtime", "llama.cpp"}, {"llama_cpp", llamacpp::version()}, {"device", "cpu"}, {"dtype", "gguf"},
              {"threads", threads},    {"batch", 1},                      {"rounds", rounds},  {"models", models}};
}

}  // namespace jointnas::pipeline
