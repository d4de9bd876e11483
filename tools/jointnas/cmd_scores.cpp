// `jointnas scores`: the sensitivity score table of a space, and its validation against finetuned
// random architectures (pipeline/scores_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/scores_stage.h"

namespace jointnas::cli {

void register_scores(CLI::App& app) {
  add_command<pipeline::ScoresOptions>(
      app, "scores", "Measure the per-decision sensitivity scores of a space and check them against finetuned random architectures",
      [](const pipeline::ScoresOptions& o, const std::string& format) {
        const Json r = pipeline::run_scores(o);
        emit(format, r, [&] {
          std::cout << fmt::format("wrote {} ({} held-out evaluations)\n", r["scores"].get<std::string>(),
                                   r["evaluations"].get<int64_t>());
          if (r.contains("validation")) {
            const Json& v = r["validation"];
            std::cout << fmt::format("{} random architectures: Spearman(score, evaluation KL) {:.3f} after the "
                                     "finetune, {:.3f} before\n",
                                     v["architectures"].get<int64_t>(), v["spearman_after_finetune"].get<double>(),
                                     v["spearman_before_finetune"].get<double>());
          }
        });
      });
}

}  // namespace jointnas::cli
