// `jointnas bench`: measured decode-step and prefill latency (pipeline/bench_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/bench_stage.h"

namespace jointnas::cli {
namespace {

std::string opt_num(const Json& r, const char* k, const char* spec) {
  return r.contains(k) ? fmt::format(fmt::runtime(spec), r[k].get<double>()) : std::string("-");
}

void print(const Json& j) {
  const double bw = j.value("copy_bandwidth_gb_s", 0.0);
  std::cout << fmt::format("{} | {} {} | {:.1f} M params | {:.2f} GB weights{}\n", j["model"].get<std::string>(),
                           j["device"].get<std::string>(), j["dtype"].get<std::string>(), j["params"].get<double>() / 1e6,
                           j["weight_bytes"].get<double>() / 1e9, bw > 0 ? fmt::format(" | copy {:.0f} GB/s", bw) : "");
  std::cout << fmt::format("{:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n", "context", "ms", "p90", "tok/s", "floor ms", "x floor");
  for (const auto& r : j["decode"]) {
    std::cout << fmt::format("{:>10} {:>10.3f} {:>10.3f} {:>10.1f} {:>10} {:>8}\n", r["context"].get<int64_t>(),
                             r["ms"].get<double>(), r["ms_p90"].get<double>(), r["tok_s"].get<double>(),
                             opt_num(r, "floor_ms", "{:.3f}"), opt_num(r, "ratio_to_floor", "{:.2f}"));
    if (r.contains("predicted_ms")) {
      std::cout << fmt::format("context {}: measured {:.4f} ms, predicted by the search's table {:.4f} ms ({:+.1f}%)\n",
                               r["context"].get<int64_t>(), r["ms"].get<double>(), r["predicted_ms"].get<double>(),
                               100.0 * (r["measured_over_predicted"].get<double>() - 1.0));
    }
  }
  if (j.contains("predicted")) {
    const Json& c = j["predicted"]["cost"];
    std::cout << fmt::format("predicted memory: weights {:.2f} MiB + KV cache {:.2f} MiB (measured weights {:.2f} MiB)\n",
                             c.value("weight_bytes", 0.0) / 1048576.0, c.value("kv_cache_bytes", 0.0) / 1048576.0,
                             j["weight_bytes"].get<double>() / 1048576.0);
  }
  for (const auto& r : j["prefill"]) {
    std::cout << fmt::format("prefill {:>6} tokens: {:.2f} ms ({:.0f} tok/s)\n", r["tokens"].get<int64_t>(),
                             r["ms"].get<double>(), r["tok_s"].get<double>());
  }
}

// --models: one line per model and shape, the ratio to the first measured in the same rounds.
void print_rounds(const Json& j) {
  if (j.contains("runtime")) {
    std::cout << fmt::format("llama.cpp {} | cpu, {} threads | {} interleaved rounds\n", j["llama_cpp"].get<std::string>(),
                             j["threads"].get<int64_t>(), j["rounds"].get<int64_t>());
    for (const auto& m : j["models"]) {
      for (const char* kind : {"decode", "prefill"}) {
        for (const auto& r : m[kind]) {
          std::cout << fmt::format("{:>8} {:>6}: {:>10.4f} ms (best {:.4f})  {:>6.3f}x [{:.3f}, {:.3f}]  {} ({})\n", kind,
                                   r.value(kind[0] == 'd' ? "context" : "tokens", int64_t{0}), r["ms"].get<double>(),
                                   r["ms_best"].get<double>(), r["ratio_to_first"].get<double>(),
                                   r["ratio_min"].get<double>(), r["ratio_max"].get<double>(),
                                   m["model"].get<std::string>(), m["description"].get<std::string>());
        }
      }
    }
    return;
  }
  std::cout << fmt::format("{} {} | batch {} | {} interleaved rounds\n", j["device"].get<std::string>(),
                           j["dtype"].get<std::string>(), j["batch"].get<int64_t>(), j["rounds"].get<int64_t>());
  for (const auto& m : j["models"]) {
    for (const char* kind : {"decode", "prefill"}) {
      for (const auto& r : m[kind]) {
        std::cout << fmt::format("{:>8} {:>6}: {:>10.4f} ms  {:>6.3f}x  {}\n", kind,
                                 r.value(kind[0] == 'd' ? "context" : "tokens", int64_t{0}), r["ms"].get<double>(),
                                 r["ratio_to_first"].get<double>(), m["model"].get<std::string>());
      }
    }
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto positional = std::make_shared<std::string>();  // `bench --runtime llama.cpp FILE.gguf`
  CLI::App* sub = add_command<pipeline::BenchOptions>(
      app, "bench", "Measure decode-step and prefill latency on the device (or of GGUF files in llama.cpp)",
      [positional](const pipeline::BenchOptions& given, const std::string& format) {
        pipeline::BenchOptions o = given;
        take_positional_model(o.run.model, *positional, "bench");
        const Json j = pipeline::run_bench(o);
        emit(format, j, [&] { j.contains("runtime") || !o.models.empty() ? print_rounds(j) : print(j); });
      });
  sub->add_option("model_file", *positional, "Model path (same as --model), e.g. a GGUF file for the llama.cpp runtime");
}

}  // namespace jointnas::cli
