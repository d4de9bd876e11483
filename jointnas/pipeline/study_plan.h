// The plan of a Pareto study (`jointnas pareto`, docs/pareto.md): its budgets, its points (one per
// method, budget and seed) and the typed options of every stage that makes, finetunes, evaluates
// and measures them. Pure: no stage runs here.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "jointnas/pipeline/arch_stage.h"
#include "jointnas/pipeline/run_config.h"
#include "jointnas/pipeline/stages.h"
#include "jointnas/report/pareto_report.h"
#include "jointnas/search/space.h"

namespace jointnas::pipeline {

// The methods of a study; a point's family groups the sequential variants.
// kLlamaQuantize (target llama.cpp): the original's f16 GGUF quantized by llama-quantize's preset.
enum class Method : uint8_t { kOriginal, kJoint, kArchOnly, kSeqFormat, kSeqMix, kDepthOnly, kQuantOnly, kLlamaQuantize };
enum class Family : uint8_t { kOriginal, kJoint, kSequential, kDepthOnly, kQuantOnly, kLlamaQuantize };
const char* family_name(Family f);  // "joint", "sequential", ..., "llama_quantize" (points.json)

// One model of the study.
struct Point {
  std::string id;          // directory name under points/ ("joint-0.5x-s0", "seq_w8a8-0.5x", ...)
  Method method = Method::kOriginal;
  std::string format;      // kSeqFormat / kQuantOnly: the uniform format; kLlamaQuantize: the preset
  std::string budget;      // "0.5x" ("" for budget-free points)
  double rel = 0;          // the budget as a fraction of the dense model (0: none)
  int64_t seed = 0;
  bool front_seed = true;  // the seed the fronts are drawn from (the others show the spread)
  std::string matched_to;  // a matched joint point: the baseline point it may not be slower than

  Family family() const;
  // "joint", "arch_only", "seq_w8a8", "seq_mix", "depth_only", "quant_w8a8", "llama_quantize_Q4_K_M"
  std::string method_name() const;
};

// "0.5x" -> 0.5; ConfigError naming `source` unless it is a fraction in (0, 1.5].
double parse_rel(const std::string& budget, const std::string& source);
std::string fmt_rel(double r);  // 0.5 -> "0.5x"

// A joint point added where baselines landed between the joint points (matched_budgets).
struct MatchedBudget {
  std::string budget;                  // "0.803x": the fastest of the baselines, as a share of the original
  std::vector<std::string> baselines;  // the ids of the baseline points it is measured against
};

// The study's settings resolved against the config and its space.
struct Study {
  RunConfig config;
  std::string out;
  std::vector<std::string> budgets, seq_formats, quant_formats, seed_budgets, llama_presets;
  std::vector<int64_t> seeds;
  int64_t parallel = 1;
  std::vector<MatchedBudget> matched;  // decided after the first latency stage (stages.json "matched")
  std::vector<Point> points;

  std::string pdir(const Point& p) const { return out + "/points/" + p.id; }
  std::string permuted() const { return out + "/permuted"; }
  std::string table() const { return config.table.empty() ? out + "/table.json" : config.table.str(); }
  std::string depth_space() const { return out + "/depth_only_space.yaml"; }
  bool has(const char* method) const;
  // Where the point's final arch.json is (a search writes it into its own directory).
  std::string arch_path(const Point& p) const;
  std::string model_path(const Point& p) const;
  bool prefill() const { return config.workload.kind == "prefill"; }
  // Target llama.cpp (docs/llamacpp.md): every point is timed as a GGUF file, the original as f16.
  bool llamacpp() const { return config.llamacpp(); }
  std::string original_gguf() const { return out + "/original-f16.gguf"; }
  // What the latency stage times for the point: its model, or (llama.cpp) its GGUF file.
  std::string latency_model(const Point& p) const;
  // The stage after which that exists ("" for the original, which always does).
  std::string latency_ready_stage(const Point& p) const;
};

// The formats a study's baselines may use: those every searched slot of `space` offers.
std::set<std::string> offered_formats(const search::SearchSpace& space);
// The study's checks (run before any stage: budgets, seeds, formats against the space).
void check_study(const RunConfig& c, const search::SearchSpace& space);
Study make_study(const RunConfig& c, const search::SearchSpace& space, const std::string& out, int64_t parallel);
// `budgets: auto`: `count` budgets spread evenly in log latency from 1.03x the fastest architecture
// the table predicts (as a fraction of the dense model) to 0.95x the dense model; the extra seeds
// run at the second and second-to-last.
void resolve_auto_budgets(Study& s, double fastest_rel);
// Every point, in the order of the report; the matched joint points last.
void build_points(Study& s);

// Matched points (docs/pareto.md). The joint method is run at the study's budgets; a baseline that
// cannot spend its budget (dropping whole blocks) lands between two joint points, where the joint
// front is only the straight line (in log latency) between them, and a front of a convex curve lies
// above the curve there. Where a measured baseline point is better than the joint front at its
// latency (a joint point measured near it included), or faster and better than the fastest joint
// point, the study runs the joint method at that baseline's
// measured latency (its share of the original measured in the same rounds, rounded up to 0.001),
// so that the comparison is at equal measured latency. Baselines within `near` of each other share
// one matched point, at the fastest of them. Only up to the largest budget, and at most `max_count`.
std::vector<MatchedBudget> matched_budgets(const std::vector<report::MeasuredPoint>& points, double top_rel,
                                           double near = 0.03, size_t max_count = 6);
Json to_json(const std::vector<MatchedBudget>& m);
std::vector<MatchedBudget> matched_from_json(const Json& j, const std::string& source);

// Latency: every point is loaded in one `bench --models` process, warmed up once and timed in
// eval.bench_rounds short interleaved rounds (a rotating order); a point's latency is its fastest
// round (noise only slows a round; every point saw the same spells). A shared CPU drifts 0.8x-1.4x over minutes, and separate
// processes put identical models up to 47 % apart (docs/results.md); one process and the same
// rounds do not. Studies measured before kept per-point logs (bench.json, bench_r2.json, ...),
// still read when latency.json lacks a point.
inline constexpr int kBenchRounds = 3;
inline std::string bench_round_suffix(int r) { return r == 1 ? "" : "_r" + std::to_string(r); }
// The study's latency stage over the given model paths (the original first): logs/latency.json.
StageJob latency_job(const Study& s, const std::vector<std::string>& models);

// The stages of the study, by phase.
struct StudyJobs {
  std::vector<StageJob> round1, round2, finetunes, exports, evals;  // exports: GGUF files (llama.cpp)
};
StudyJobs study_jobs(const Study& s);
// The shared stages: importance, profile (unless a table is given), the original's f16 GGUF
// (target llama.cpp).
std::vector<StageJob> shared_jobs(const Study& s);
// An `arch` stage of the whole space (the dense model's cost, or the fastest architecture).
StageJob cost_job(const Study& s, const std::string& name, bool fastest);
// The depth-only baseline's space: the user's, with every depth from 1 block (as YAML text).
std::string depth_space_yaml(const std::string& space_path);

}  // namespace jointnas::pipeline
