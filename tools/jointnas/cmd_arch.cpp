// `jointnas arch`: an arch.json by rule (uniform formats, a depth, the fastest architecture),
// costed by the table like a searched one (pipeline/arch_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/arch_stage.h"

namespace jointnas::cli {

void register_arch(CLI::App& app) {
  add_command<pipeline::ArchStageOptions>(
      app, "arch", "Write an arch.json by rule (uniform formats, a given depth) costed by the table",
      [](const pipeline::ArchStageOptions& o, const std::string& format) {
        const Json r = pipeline::run_arch_stage(o);
        emit(format, r, [&] {
          const std::string rule = r["rule"].get<std::string>();
          std::cout << fmt::format("wrote {} ({}): {:.4f} ms predicted, dense {:.4f} ms\n", r["arch"].get<std::string>(),
                                   rule.empty() ? "the whole model" : rule, r["predicted"].value("latency_ms", 0.0),
                                   r["dense"].value("latency_ms", 0.0));
        });
      });
}

}  // namespace jointnas::cli
