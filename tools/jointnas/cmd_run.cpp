// `jointnas run CONFIG.yaml`: every stage in one run directory, resuming past finished stages
// (pipeline/run.h). The whole config is checked before the first stage starts.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/pipeline/run.h"

namespace jointnas::cli {

void register_run(CLI::App& app) {
  add_command<pipeline::RunCommandOptions>(
      app, "run", "Every stage in one run directory (resumes past finished stages)",
      [](const pipeline::RunCommandOptions& o, const std::string& format) {
        const pipeline::RunConfig c = pipeline::load_run_config(o.config);
        pipeline::check(c, pipeline::RunMode::kRun);
        const std::string dir = pipeline::run_directory(o, c);
        if (o.dry_run) {
          Json plan = Json::array();
          for (const auto& j : pipeline::stage_jobs(pipeline::plan_run(c, dir))) {
            plan.push_back({{"stage", j.name}, {"args", j.args}, {"log", j.log}});
          }
          emit(format, Json{{"run_dir", dir}, {"config", pipeline::dump(c)}, {"stages", plan}}, [&] {
            for (const auto& s : plan) {
              std::cout << fmt::format("{}: jointnas {}\n", s["stage"].get<std::string>(),
                                       fmt::join(s["args"].get<std::vector<std::string>>(), " "));
            }
          });
          return;
        }
        const std::string md =
            pipeline::run_pipeline(c, read_text_file(o.config), dir, o.closed_loop, install_interrupt_handler());
        emit(format, Json{{"run_dir", dir}, {"summary", md}},
             [&] { std::cout << md << fmt::format("\nwrote {0}/summary.md and {0}/report.svg\n", dir); });
      },
      // `jointnas run --dump-config CONFIG`: the config's effective values, every default included.
      [](const pipeline::RunCommandOptions& o) { return pipeline::dump(pipeline::load_run_config(o.config)); });
}

}  // namespace jointnas::cli
