// The `arch` stage; see arch_stage.h.
#include "jointnas/pipeline/arch_stage.h"

#include <algorithm>

#include <c10/core/ScalarType.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/compress/importance.h"
#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/pipeline/search_stage.h"
#include "jointnas/search/arch_io.h"

namespace jointnas::pipeline {
namespace {

// Every searched slot of `a` in format `name` (a slot the space does not search keeps its format).
void set_all_formats(const search::SearchSpace& space, const std::string& name, const std::string& space_path,
                     search::Arch& a) {
  for (size_t l = 0; l < space.layers.size(); ++l) {
    for (model::LinearSlot slot : model::kSlots) {
      const size_t k = model::slot_index(slot);
      const auto& choices = space.layers[l].formats[k];
      if (choices.size() < 2) continue;
      auto it = std::find(choices.begin(), choices.end(), name);
      JNAS_CHECK_CONFIG(it != choices.end(), "--formats {}: not a choice of layer {} {} in {} (choices: {})", name, l,
                        model::slot_name(slot), space_path, fmt::join(choices, ", "));
      a.formats[l][k] = it - choices.begin();
    }
  }
}

int64_t depth_index(const search::SearchSpace& space, int64_t n, const std::string& space_path) {
  auto it = std::find(space.depth.begin(), space.depth.end(), n);
  JNAS_CHECK_CONFIG(it != space.depth.end(), "--depth {}: not a depth choice of {} (choices: {})", n, space_path,
                    fmt::join(space.depth, ", "));
  return it - space.depth.begin();
}

// The most blocks (in the depth order) whose predicted latency meets the budget.
int64_t fit_depth(const search::CostContext& cc, search::Arch a, double budget_ms, const std::string& space_path) {
  const search::SearchSpace& space = *cc.space;
  for (int64_t d = static_cast<int64_t>(space.depth.size()) - 1; d >= 0; --d) {
    a.depth = d;
    if (search::arch_cost(cc, a).latency_ms <= budget_ms) return d;
  }
  throw ConfigError(fmt::format("--fit-depth: even {} blocks predict {:.4f} ms, above the {:.4f} ms budget; lower the "
                                "depth choices of {} or raise the budget",
                                space.depth.front(), search::arch_cost(cc, a).latency_ms, budget_ms, space_path));
}

}  // namespace

Json run_arch_stage(const ArchStageOptions& o) {
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::Checkpoint ck = model::load_checkpoint(o.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(o.space, cfg, target_device_name(o.target_device, ro));
  const profile::LatencyTable table = profile::LatencyTable::load(o.table);
  const std::vector<int64_t> rank =
      o.importance.empty() ? std::vector<int64_t>{} : compress::load_block_rank(o.importance, cfg.num_hidden_layers);
  const search::CostContext cc{&cfg, &space, rank, &table, o.workload, static_cast<int64_t>(c10::elementSize(ro.dtype))};
  const profile::Cost dense = search::arch_cost(cc, search::largest_arch(space));

  JNAS_CHECK_CONFIG(!(o.fastest && !o.from.empty()), "give --from or --fastest, not both");
  search::Arch a = o.fastest          ? search::fastest_arch(cc)
                   : o.from.empty()   ? search::largest_arch(space)
                                      : search::arch_from_json(read_json_file(o.from), space, o.from);
  std::vector<std::string> rule;
  if (!o.from.empty()) rule.push_back("from " + o.from.str());
  if (o.fastest) rule.push_back("the fastest architecture by the table");
  if (!o.format_all.empty()) {
    set_all_formats(space, o.format_all, o.space, a);
    rule.push_back("every linear " + o.format_all);
  }
  if (o.depth > 0) {
    a.depth = depth_index(space, o.depth, o.space);
    rule.push_back(fmt::format("{} blocks", o.depth));
  }
  search::Budget budget;
  if (!o.latency.empty()) budget.latency_ms = parse_latency_budget(o.latency, dense.latency_ms);
  if (o.fit_depth) {
    JNAS_CHECK_CONFIG(budget.latency_ms > 0, "--fit-depth needs --latency");
    JNAS_CHECK_CONFIG(o.depth == 0, "give --depth or --fit-depth, not both");
    a.depth = fit_depth(cc, a, budget.latency_ms, o.space);
    rule.push_back(fmt::format("the most blocks (by block influence) within {:.4f} ms: {}", budget.latency_ms,
                               space.depth[static_cast<size_t>(a.depth)]));
  }
  search::DnasResult r;
  r.argmax = a;
  r.arch = a;
  r.predicted = search::arch_cost(cc, a);
  r.stop_reason = "rule";
  Json aj = search::arch_json(cc, r, budget);
  aj["rule"] = fmt::format("{}", fmt::join(rule, "; "));
  write_file_atomic(o.out, aj.dump(1) + "\n");
  return Json{{"arch", o.out.str()}, {"rule", aj["rule"]}, {"predicted", r.predicted.to_json()},
              {"dense", dense.to_json()}, {"budget", budget.to_json()}};
}

}  // namespace jointnas::pipeline
