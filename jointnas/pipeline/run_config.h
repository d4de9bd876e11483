// The run config of `jointnas run` and `jointnas pareto` (configs/runs/*.yaml), typed: each section
// is the options struct of the stage it configures (declared once, core/options.h), so a value is
// checked for its type and range when the file is read, an unknown key is an error naming the key
// and the file, and `--dump-config` prints the effective config with every default. check()
// then verifies everything that can be known before a stage runs (files, the model's positions
// against the workload, the eval window and the bench contexts; the search space against the
// model; budgets; the study's budgets, methods and formats), in well under two seconds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/bench_stage.h"
#include "jointnas/pipeline/finetune_stage.h"
#include "jointnas/pipeline/importance_stage.h"
#include "jointnas/pipeline/ppl_stage.h"
#include "jointnas/pipeline/profile_stage.h"
#include "jointnas/pipeline/search_stage.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct DataSettings {
  opt::Path calibration, train, eval;
};
template <class V>
void fields(V& v, DataSettings& d) {
  v(opt::Key{"calibration", "Calibration text: importance windows (and the training text when `train` is absent)",
             nullptr, nullptr, true},
    d.calibration);
  v(opt::Key{"train", "Distillation text of the search and the finetune (default: calibration)"}, d.train);
  v(opt::Key{"eval", "Held-out text for perplexity (optional for `run`, required for `pareto`)"}, d.eval);
}

// The run config's `eval:` section: perplexity (as `jointnas eval ppl`), latency repeats (as
// `jointnas bench --repeats`) and the tasks of a study.
struct EvalSettings {
  PplSettings ppl;
  BenchTiming bench;
  std::vector<std::string> tasks;
  int64_t task_limit = 0;
  opt::Path task_dir, task_data;
  int64_t bench_rounds = 25;  // a study's latency: every point in one process, short interleaved rounds
};
template <class V>
void fields(V& v, EvalSettings& e) {
  fields(v, e.ppl);
  v(opt::Key{"bench_repeats", "Timed repeats of each latency measurement (median reported)"}, e.bench.repeats,
    opt::in<int64_t>(1, 100000));
  v(opt::Key{"bench_rounds", "A study's latency: every point loaded in one process and timed in this many short "
                             "interleaved rounds; a point's latency is its fastest round"},
    e.bench_rounds, opt::in<int64_t>(1, 1000));
  v(opt::Key{"tasks", "Zero-shot tasks of a study (configs/tasks/<name>.yaml)"}, e.tasks);
  v(opt::Key{"task_limit", "First N documents of each task (0 = all)"}, e.task_limit, opt::in<int64_t>(0, 1 << 30));
  v(opt::Key{"task_dir", "Directory of the task files (default: $JNAS_TASK_DIR, else configs/tasks of the checkout)"},
    e.task_dir);
  v(opt::Key{"task_data", "Root of the task data (default: $JNAS_DATA_DIR, else ../shared/data beside the checkout)"},
    e.task_data);
}

// The `pareto:` section of a study (docs/pareto.md).
struct ParetoSettings {
  std::vector<std::string> budgets{"auto"};  // fractions of the dense model ("0.5x"), or auto
  int64_t budget_count = 6;                  // with budgets: auto
  std::vector<std::string> methods{"joint", "sequential", "quant_only", "depth_only"};
  std::vector<std::string> sequential_formats;  // empty: w8a8, fp8_e4m3, w4a16_g128 where offered
  std::vector<std::string> quant_formats;       // empty: w8a16, w4a16_g128, w8a8, fp8_e4m3 where offered
  std::vector<std::string> llama_presets;       // empty: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0 (method llama_quantize)
  std::vector<int64_t> seeds;                   // empty: the config's seed
  std::vector<std::string> seed_budgets;        // empty with budgets: auto: the second and second-to-last
  int64_t parallel = 1;
  bool keep_models = true;
  bool sequential_mix = true;  // the sequential family's per-layer mix (two searches per budget)
  bool matched_points = true;  // joint points at the latencies where baselines beat the joint front's line
};
template <class V>
void fields(V& v, ParetoSettings& p) {
  v(opt::Key{"budgets", "Latency budgets as fractions of the dense model (0.5x, ...), or auto"}, p.budgets);
  v(opt::Key{"budget_count", "With budgets: auto, this many budgets"}, p.budget_count, opt::in<int64_t>(2, 40));
  v(opt::Key{"methods", "Methods of the study (llama_quantize: the original quantized by llama-quantize's presets; "
                       "target_device llama.cpp only)"},
    p.methods, opt::Choices{"joint", "sequential", "quant_only", "depth_only", "llama_quantize"});
  v(opt::Key{"sequential_formats", "Formats applied after the architecture-only search (default: w8a8, fp8_e4m3, "
                                   "w4a16_g128 where the space offers them)"},
    p.sequential_formats);
  v(opt::Key{"quant_formats", "Uniform formats of the quantization-only baseline (default: w8a16, w4a16_g128, w8a8, "
                              "fp8_e4m3 where the space offers them)"},
    p.quant_formats);
  v(opt::Key{"llama_presets", "llama-quantize presets of the llama_quantize baseline (default: Q8_0, Q6_K, Q5_K_M, "
                              "Q4_K_M, Q4_0)"},
    p.llama_presets, opt::Choices{"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"});
  v(opt::Key{"seeds", "Seeds of the joint search (the first draws the fronts; default: the config's seed)"}, p.seeds,
    opt::in<int64_t>(0, int64_t(1) << 62));
  v(opt::Key{"seed_budgets", "Budgets at which the extra seeds run"}, p.seed_budgets);
  v(opt::Key{"parallel", "Search / finetune / eval stages at once"}, p.parallel, opt::in<int64_t>(1, 64));
  v(opt::Key{"keep_models", "Keep each point's weights once it is measured"}, p.keep_models);
  v(opt::Key{"sequential_mix", "The sequential family's per-layer precision after the architecture (seq_mix: two "
                               "searches per budget); false: the uniform formats only"},
    p.sequential_mix);
  v(opt::Key{"matched_points", "After the latency stage, run the joint method again at the measured latency of each "
                               "baseline point that lands between two joint points and beats the line between them "
                               "(docs/pareto.md)"},
    p.matched_points);
}

struct RunConfig {
  opt::Path model, search_space, run_dir, table;
  std::string device = "cpu";
  // The device whose latency the budget is on (default: device); "llama.cpp": GGUF exports timed
  // through libllama on this CPU with `threads` threads (docs/llamacpp.md), while training and
  // evaluation run on `device`.
  std::string target_device;
  int64_t threads = 1;        // one intra-op thread measures steadily on a shared CPU
  int64_t seed = 0;
  DataSettings data;
  profile::Workload workload;
  BudgetSettings budget;
  ImportanceSettings importance;
  ProfileSettings profile;
  SearchSettings search;
  FinetuneSettings finetune;
  EvalSettings eval;
  int64_t closed_loop = 2;
  // Exports of the found model written at the end of a run (docs/export.md): gguf, hf.
  std::vector<std::string> export_to;
  ParetoSettings pareto;

  // Not options: where the config came from, and which optional sections it has.
  std::string source, dir;
  bool has_pareto = false;

  // The target's name: cpu, cuda or llama.cpp (whose formats a search space defaults to).
  std::string target() const { return target_device.empty() ? device : target_device; }
  bool llamacpp() const { return target_device == "llama.cpp"; }
  // The torch device of jointnas's own runtime where it stands for the target (profile, bench):
  // the target, or the CPU that llama.cpp runs on.
  std::string target_torch_device() const { return llamacpp() ? "cpu" : target(); }
  std::string train_text() const { return data.train.empty() ? data.calibration.str() : data.train.str(); }
};
template <class V>
void fields(V& v, RunConfig& c) {
  v(opt::Key{"model", "HF model directory or llama2.c .bin (relative to this file, or $SHARED/...)", nullptr, nullptr,
             true},
    c.model);
  v(opt::Key{"search_space", "Search space YAML (docs/search.md)", nullptr, nullptr, true}, c.search_space);
  v(opt::Key{"run_dir", "Run directory (default: runs/<config name>)"}, c.run_dir);
  v(opt::Key{"device", "Where training and evaluation run: cpu or cuda"}, c.device, opt::Choices{"cpu", "cuda"});
  v(opt::Key{"target_device", "Where latency is measured and the table profiled (default: device): cpu, cuda, or "
                              "llama.cpp (GGUF exports timed through libllama on this CPU with `threads` threads; "
                              "docs/llamacpp.md)"},
    c.target_device, target_choices());
  v(opt::Key{"threads", "CPU threads of every stage (at most the machine's cores); with target_device llama.cpp also "
                        "llama.cpp's thread count"}, c.threads, opt::in<int64_t>(0, 4096));
  v(opt::Key{"seed", "Seed of every stage"}, c.seed, opt::in<int64_t>(0, int64_t(1) << 62));
  v(opt::Key{"table", "Reuse this measured latency table instead of profiling"}, c.table);
  v.section(opt::Key{"data", "Texts"}, c.data);
  v.section(opt::Key{"workload", "What latency means"}, c.workload);
  v.section(opt::Key{"budget", "The budget (run; a study sets it per point)"}, c.budget);
  v.section(opt::Key{"importance", "Importance calibration"}, c.importance);
  v.section(opt::Key{"profile", "Latency table"}, c.profile);
  v.section(opt::Key{"search", "The joint search"}, c.search);
  v.section(opt::Key{"finetune", "Recovery finetune"}, c.finetune);
  v.section(opt::Key{"eval", "Evaluation"}, c.eval);
  v(opt::Key{"closed_loop", "Closed-loop correction rounds on the measured latency (0 = off)"}, c.closed_loop,
    opt::in<int64_t>(0, 1000));
  v(opt::Key{"export", "Exports of the found model at the end of the run: gguf (RUN/export/model.gguf), hf "
                       "(RUN/export/hf)"},
    c.export_to, opt::Choices{"gguf", "hf"});
  v.section(opt::Key{"pareto", "The study of `jointnas pareto`"}, c.pareto);
}

// Parses the YAML `text` of the run config file `path` (named in errors; relative paths start at
// its folder). ConfigError for invalid YAML, a wrong type or range, an unknown key or a missing
// required key. Pure: reads no other file (fuzz/fuzz_run_config.cpp).
RunConfig parse_run_config(const std::string& text, const std::string& path);
// Reads and parses `path` (IoError when it cannot be read).
RunConfig load_run_config(const std::string& path);

// What a config is for: `jointnas run` needs a budget, `jointnas pareto` a pareto section and eval
// text.
enum class RunMode { kRun, kStudy };
// Every check that needs no stage: files exist, the model's config loads, the search space parses
// against it (with the target device's formats), the workload, the eval window and the bench
// contexts fit the model's positions, the budget parses, the study's settings are consistent, the
// thread count fits the machine. ConfigError (exit 2) naming the key and the file.
void check(const RunConfig& c, RunMode mode);

// The model settings of a stage the config starts: `model` on `device` with the config's threads.
ModelSettings stage_model(const RunConfig& c, const std::string& model, const std::string& device);

// The effective config as JSON (every default).
Json dump(const RunConfig& c);

}  // namespace jointnas::pipeline
