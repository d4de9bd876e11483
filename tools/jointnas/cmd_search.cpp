// `jointnas search`: the differentiable joint search (pipeline/search_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/search_stage.h"

namespace jointnas::cli {
namespace {

void print(const Json& r) {
  std::cout << fmt::format("searched {} steps (stop: {}); wrote {}\n", r["steps_run"].get<int64_t>(),
                           r["stop_reason"].get<std::string>(), r["arch"].get<std::string>());
  const Json &d = r["dense"], &p = r["predicted"], &b = r["budget"];
  auto mib = [](const Json& c, const char* k) { return c.value(k, 0.0) / 1048576.0; };
  auto budget = [&](const char* k, double scale, const char* spec) {
    const double v = b.value(k, 0.0);
    return v > 0 ? fmt::format(fmt::runtime(spec), v / scale) : std::string("-");
  };
  std::cout << fmt::format("  {:<28} {:>12} {:>12} {:>12}\n", "", "dense", "found", "budget");
  std::cout << fmt::format("  {:<28} {:>12.4f} {:>12.4f} {:>12}\n", "latency (ms, table)", d.value("latency_ms", 0.0),
                           p.value("latency_ms", 0.0), budget("latency_ms", 1.0, "{:.4f}"));
  std::cout << fmt::format("  {:<28} {:>12.2f} {:>12.2f} {:>12}\n", "peak memory (MiB, table)", mib(d, "peak_bytes"),
                           mib(p, "peak_bytes"), budget("memory_bytes", 1048576.0, "{:.2f}"));
  std::cout << fmt::format("  {:<28} {:>12.2f} {:>12.2f} {:>12}\n", "  of which weights + KV",
                           mib(d, "weight_bytes") + mib(d, "kv_cache_bytes"), mib(p, "weight_bytes") + mib(p, "kv_cache_bytes"), "");
  std::cout << fmt::format("  {:<28} {:>12.0f} {:>12.0f} {:>12}\n", "parameters", d.value("params", 0.0),
                           p.value("params", 0.0), budget("params", 1.0, "{:.0f}"));
  for (const auto& m : r["repairs"]) std::cout << "  repair: " << m.get<std::string>() << "\n";
}

}  // namespace

void register_search(CLI::App& app) {
  add_command<pipeline::SearchOptions>(
      app, "search", "Differentiable joint search of architecture and per-layer formats under a budget",
      [](const pipeline::SearchOptions& o, const std::string& format) {
        const Json r = pipeline::run_search(o, &install_interrupt_handler());
        emit(format, r, [&] { print(r); });
      });
}

}  // namespace jointnas::cli
