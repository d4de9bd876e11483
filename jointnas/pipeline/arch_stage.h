// The `arch` stage: an arch.json by rule instead of by search, costed against the latency table
// exactly like a searched one, so that finetune exports it and the reports read it. The baselines
// of a Pareto study are made with it (docs/pareto.md): uniform formats on the whole model; a
// searched architecture quantized after; depth only (block influence, ShortGPT).
#pragma once

#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct ArchStageOptions {
  ModelSettings run;
  opt::Path space, table, importance, from, out;
  std::string target_device;
  profile::Workload workload;
  std::string format_all;  // one format for every searched linear
  int64_t depth = 0;       // kept blocks (0: as --from, or the whole model)
  std::string latency;     // with fit_depth
  bool fit_depth = false;  // the most blocks whose predicted latency meets --latency
  bool fastest = false;    // the architecture of least predicted latency
};
template <class V>
void fields(V& v, ArchStageOptions& o) {
  fields(v, o.run);
  v(opt::Key{"space", "Search space YAML", nullptr, nullptr, true}, o.space);
  v(opt::Key{"table", "Latency table of the target device and workload", nullptr, nullptr, true}, o.table);
  v(opt::Key{"importance", "importance.json of the (permuted) model: the depth order"}, o.importance);
  v(opt::Key{"target_device", "cpu | cuda | llama.cpp: whose formats the space defaults to (default: --device)"}, o.target_device,
    target_choices());
  fields(v, o.workload);
  v(opt::Key{"from", "Start from this arch.json (default: the whole model in bf16)"}, o.from);
  v(opt::Key{"fastest", "Start from the architecture of least predicted latency"}, o.fastest);
  v(opt::Key{"formats", "One format for every searched linear"}, o.format_all);
  v(opt::Key{"depth", "Kept blocks, in importance order (0: as --from, or the whole model)"}, o.depth,
    opt::in<int64_t>(0, 1 << 20));
  v(opt::Key{"latency", "Latency budget: ms, or a fraction of the dense model (0.6x)"}, o.latency);
  v(opt::Key{"fit_depth", "The most blocks whose predicted latency meets --latency"}, o.fit_depth);
  v(opt::Key{"out", "arch.json to write", nullptr, nullptr, true}, o.out);
}

// Writes the arch.json; returns {arch, rule, predicted, dense, budget}.
Json run_arch_stage(const ArchStageOptions& o);

}  // namespace jointnas::pipeline
