// `jointnas pareto CONFIG.yaml`: the joint search against the prune-then-quantize baselines at
// several budgets, every point measured; the report of the fronts (pipeline/study.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/run.h"
#include "jointnas/pipeline/study.h"

namespace jointnas::cli {

void register_pareto(CLI::App& app) {
  using pipeline::ParetoCommandOptions;
  add_command<ParetoCommandOptions>(
      app, "pareto", "Joint search vs prune-then-quantize baselines at several budgets; measured Pareto report",
      [](const ParetoCommandOptions& o, const std::string& format) {
        const pipeline::RunConfig c = pipeline::load_run_config(o.run.config);
        // A report is often drawn on another machine than the one that measured: its thread count
        // is the measuring machine's business.
        pipeline::RunConfig checked = c;
        if (o.report_only) checked.threads = 0;
        pipeline::check(checked, pipeline::RunMode::kStudy);
        const model::Checkpoint ck = model::load_checkpoint(c.model);
        const search::SearchSpace space = search::SearchSpace::from_yaml_file(c.search_space, ck.config, c.target());
        const pipeline::Study s = pipeline::make_study(c, space, pipeline::run_directory(o.run, c),
                                                       o.parallel > 0 ? o.parallel : c.pareto.parallel);
        const std::string md =
            pipeline::run_study(s, read_text_file(o.run.config), o.report_only, install_interrupt_handler());
        emit(format, Json{{"study_dir", s.out}, {"report", md}},
             [&] { std::cout << md << fmt::format("\nwrote {}/report/pareto.md, points.json, headline.json\n", s.out); });
      },
      [](const ParetoCommandOptions& o) { return pipeline::dump(pipeline::load_run_config(o.run.config)); });
}

}  // namespace jointnas::cli
