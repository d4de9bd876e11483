// `jointnas arch`: writes an arch.json by rule instead of by search, costed against the latency
// table exactly like a searched one, so that `jointnas finetune` exports it and the reports read
// it. The baselines of `jointnas pareto` are made with it (docs/pareto.md):
//   uniform formats on the whole model         jointnas arch --formats w8a8 ...
//   a searched architecture, quantized after   jointnas arch --from arch.json --formats w8a8 ...
//   depth only (block influence, ShortGPT)     jointnas arch --latency 0.6x --fit-depth ...
#include <iostream>

#include <c10/core/ScalarType.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common.h"
#include "search_flags.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/search/dnas.h"

namespace jointnas::cli {
namespace {

struct ArchFlags {
  RunFlags run;
  std::string space, table, importance, from, out, latency, target_device;
  profile::Workload workload;
  std::string format_all;  // one format for every linear
  int64_t depth = 0;       // kept blocks (0: as --from, or the whole model)
  bool fit_depth = false;  // with --latency: the most blocks whose predicted latency meets it
  bool fastest = false;    // the architecture of least predicted latency
};

void run(ArchFlags& f) {
  const model::RuntimeOptions ro = runtime_options(f.run);
  const model::Checkpoint ck = model::load_checkpoint(f.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const std::string dev = !f.target_device.empty() ? f.target_device : ro.device.is_cuda() ? "cuda" : "cpu";
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(f.space, cfg, dev);
  const profile::LatencyTable table = profile::LatencyTable::load(f.table);
  search::CostContext cc;
  cc.config = &cfg;
  cc.space = &space;
  cc.block_rank = f.importance.empty() ? std::vector<int64_t>{} : ranks_from_importance(f.importance, cfg.num_hidden_layers);
  cc.table = &table;
  cc.workload = f.workload;
  cc.dtype_bytes = static_cast<int64_t>(c10::elementSize(ro.dtype));
  const profile::Cost dense = search::arch_cost(cc, search::largest_arch(space));

  JNAS_CHECK_CONFIG(!(f.fastest && !f.from.empty()), "give --from or --fastest, not both");
  search::Arch a = f.fastest          ? search::fastest_arch(cc)
                   : f.from.empty()   ? search::largest_arch(space)
                                      : search::arch_from_json(read_json_file(f.from), space, f.from);
  std::vector<std::string> rule;
  if (!f.from.empty()) rule.push_back("from " + f.from);
  if (f.fastest) rule.push_back("the fastest architecture by the table");
  if (!f.format_all.empty()) {
    for (size_t l = 0; l < space.layers.size(); ++l) {
      for (int k = 0; k < search::kNumFormatSlots; ++k) {
        const auto& choices = space.layers[l].formats[k];
        if (choices.size() < 2) continue;  // a slot the space does not search keeps its format
        auto it = std::find(choices.begin(), choices.end(), f.format_all);
        JNAS_CHECK_CONFIG(it != choices.end(), "--formats {}: not a choice of layer {} {} in {} (choices: {})", f.format_all, l,
                          search::kSlotNames[k], f.space, fmt::join(choices, ", "));
        a.formats[l][k] = it - choices.begin();
      }
    }
    rule.push_back("every linear " + f.format_all);
  }
  auto set_depth = [&](int64_t n) {
    auto it = std::find(space.depth.begin(), space.depth.end(), n);
    JNAS_CHECK_CONFIG(it != space.depth.end(), "--depth {}: not a depth choice of {} (choices: {})", n, f.space,
                      fmt::join(space.depth, ", "));
    a.depth = it - space.depth.begin();
  };
  if (f.depth > 0) {
    set_depth(f.depth);
    rule.push_back(fmt::format("{} blocks", f.depth));
  }
  search::Budget budget;
  if (!f.latency.empty()) budget.latency_ms = parse_latency_budget(f.latency, dense.latency_ms);
  if (f.fit_depth) {
    JNAS_CHECK_CONFIG(budget.latency_ms > 0, "--fit-depth needs --latency");
    JNAS_CHECK_CONFIG(f.depth == 0, "give --depth or --fit-depth, not both");
    bool met = false;
    for (int64_t d = static_cast<int64_t>(space.depth.size()) - 1; d >= 0 && !met; --d) {
      a.depth = d;
      met = search::arch_cost(cc, a).latency_ms <= budget.latency_ms;
    }
    JNAS_CHECK_CONFIG(met, "--fit-depth: even {} blocks predict {:.4f} ms, above the {:.4f} ms budget; lower the depth "
                           "choices of {} or raise the budget",
                      space.depth.front(), search::arch_cost(cc, a).latency_ms, budget.latency_ms, f.space);
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
  write_file_atomic(f.out, aj.dump(1) + "\n");
  emit(f.run.format,
       Json{{"arch", f.out}, {"rule", aj["rule"]}, {"predicted", r.predicted.to_json()}, {"dense", dense.to_json()},
            {"budget", budget.to_json()}},
       [&] {
         std::cout << fmt::format("wrote {} ({}): {:.4f} ms predicted, dense {:.4f} ms\n", f.out,
                                  rule.empty() ? "the whole model" : aj["rule"].get<std::string>(), r.predicted.latency_ms,
                                  dense.latency_ms);
       });
}

}  // namespace

void register_arch(CLI::App& app) {
  auto f = std::make_shared<ArchFlags>();
  auto* sub = app.add_subcommand("arch", "Write an arch.json by rule (uniform formats, a given depth) costed by the table");
  add_run_flags(sub, f->run);
  sub->add_option("--space", f->space, "Search space YAML")->required();
  sub->add_option("--table", f->table, "Latency table of the target device and workload")->required();
  sub->add_option("--importance", f->importance, "importance.json of the (permuted) model: the depth order");
  sub->add_option("--target-device", f->target_device, "cpu | cuda: whose formats the space defaults to (default: --device)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  add_workload_flags(sub, f->workload);
  sub->add_option("--from", f->from, "Start from this arch.json (default: the whole model in bf16)");
  sub->add_flag("--fastest", f->fastest, "Start from the architecture of least predicted latency");
  sub->add_option("--formats", f->format_all, "One format for every linear");
  sub->add_option("--depth", f->depth, "Kept blocks, in importance order");
  sub->add_option("--latency", f->latency, "Latency budget: ms, or a fraction of the dense model (0.6x)");
  sub->add_flag("--fit-depth", f->fit_depth, "The most blocks whose predicted latency meets --latency");
  sub->add_option("--out", f->out, "arch.json to write")->required();
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
