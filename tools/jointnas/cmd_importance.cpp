// `jointnas importance`: the permuted model + importance.json (pipeline/importance_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/importance_stage.h"

namespace jointnas::cli {

void register_importance(CLI::App& app) {
  add_command<pipeline::ImportanceOptions>(
      app, "importance",
      "Rank channels, KV groups, neurons and blocks on calibration text; write the importance-permuted model",
      [](const pipeline::ImportanceOptions& o, const std::string& format) {
        const Json r = pipeline::run_importance(o);
        emit(format, r, [&] {
          std::cout << fmt::format("wrote {} (permuted model) and importance.json from {} tokens\n",
                                   r["out"].get<std::string>(), r["tokens"].get<int64_t>());
          std::cout << "  block  influence  rank\n";
          const auto rank = r["block_rank"].get<std::vector<int64_t>>();
          std::vector<int64_t> rank_of(rank.size());
          for (size_t k = 0; k < rank.size(); ++k) rank_of[static_cast<size_t>(rank[k])] = static_cast<int64_t>(k);
          const auto infl = r["block_influence"].get<std::vector<double>>();
          for (size_t l = 0; l < infl.size(); ++l) std::cout << fmt::format("  {:>5}  {:>9.5f}  {:>4}\n", l, infl[l], rank_of[l]);
        });
      });
}

}  // namespace jointnas::cli
