// `jointnas profile`: the latency table of a search space on this device, optionally calibrated
// and validated end to end (pipeline/profile_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/profile_stage.h"

namespace jointnas::cli {
namespace {

void print(const pipeline::ProfileStageOptions& o, const Json& j) {
  std::cout << fmt::format("wrote {}: {} entries ({} needed by the space for {})\n", j["out"].get<std::string>(),
                           j["entries"].get<int64_t>(), j["required"].get<int64_t>(), o.workload.name());
  if (!j.contains("validation")) return;
  const Json& v = j["validation"];
  std::cout << fmt::format("validation on {} random sub-architectures: median |error| {:.1f}%, max {:.1f}%\n",
                           v["architectures"].get<int64_t>(), 100 * v["median_abs_rel_error"].get<double>(),
                           100 * v["max_abs_rel_error"].get<double>());
  if (v.contains("peak_memory_max_abs_rel_error")) {
    std::cout << fmt::format("peak memory: median |error| {:.2f}%, max {:.2f}%\n",
                             100 * v["peak_memory_median_abs_rel_error"].get<double>(),
                             100 * v["peak_memory_max_abs_rel_error"].get<double>());
  }
}

}  // namespace

void register_profile(CLI::App& app) {
  add_command<pipeline::ProfileStageOptions>(
      app, "profile", "Measure the latency table of a search space on this device",
      [](const pipeline::ProfileStageOptions& o, const std::string& format) {
        const Json j = pipeline::run_profile(o);
        emit(format, j, [&] { print(o, j); });
      });
}

}  // namespace jointnas::cli
