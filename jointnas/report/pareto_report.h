// The report of a Pareto study (docs/pareto.md): from the measured points of every method, the
// fronts, the headline numbers (speed-up at equal quality, gain at equal latency, against every
// family), every point, the repeat-measurement spread, the spread over seeds, the architectures
// side by side, the charts and the wall time by stage. make_pareto_report is a pure function of
// the points (tested directly); write_pareto_report writes the files and draws the charts.
// Torch-free.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/report/plot.h"

namespace jointnas::report {

// One point of the study as measured (NaN where a value is missing).
struct MeasuredPoint {
  std::string id, method, family, budget;  // method: "joint", "seq_w8a8", ...; family: "joint", "sequential", ...
  int64_t seed = 0;
  bool front_seed = true;
  bool ok = false;  // latency and perplexity measured
  std::string status;
  double ms = NAN, predicted_ms = NAN, ppl = NAN, kl = NAN, top1 = NAN, acc = NAN, acc_se = NAN;
  double mib = NAN, peak_mib = NAN, params = NAN;
  std::map<std::string, double> task_acc;
  Json arch;  // the point's arch.json (null for the original)
};

// "joint search (architecture + precision)", "sequential: architecture, then w8a8", ... for a
// method name ("joint", "seq_w8a8", "quant_w8a8", "depth_only", ...).
std::string method_label(const std::string& method);

// What the report says about the study around the points.
struct StudyInfo {
  std::string model;
  std::string workload;        // in words ("decode step at context 512, batch 1")
  bool prefill = false;
  std::string target, device_name;
  std::vector<std::string> budgets, seed_budgets, seq_formats, tasks;
  std::vector<int64_t> seeds;
  int64_t finetune_steps = 0;
  std::string eval_text;
  std::map<std::string, double> stage_seconds;  // wall time by stage kind
  // Matched joint points: (budget, the baseline point ids it was run against).
  std::vector<std::pair<std::string, std::vector<std::string>>> matched;
};

struct ParetoReport {
  std::string markdown;  // without the charts section
  Json points, headline;
  std::vector<std::pair<std::string, Chart>> charts;  // (file stem, chart)
};
ParetoReport make_pareto_report(const StudyInfo& info, const std::vector<MeasuredPoint>& points);

// Writes DIR/points.json, headline.json and pareto.md (the numbers first: a chart that fails to
// draw loses nothing), then the charts (PNG + SVG) when PLplot is there; returns the markdown.
std::string write_pareto_report(const ParetoReport& r, const StudyInfo& info, const std::string& dir);

}  // namespace jointnas::report
