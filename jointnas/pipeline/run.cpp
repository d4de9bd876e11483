// `jointnas run`; see run.h.
#include "jointnas/pipeline/run.h"

#include <filesystem>

#include <fmt/format.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/dir_lock.h"
#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

}  // namespace

BenchOptions workload_bench(const RunConfig& c, const std::string& model) {
  BenchOptions b;
  b.run = stage_model(c, model, c.target_torch_device());
  if (c.llamacpp()) b.runtime = "llama.cpp";
  b.batch = c.workload.batch;
  b.timing = c.eval.bench;
  if (c.workload.kind == "prefill") {
    b.contexts.clear();
    b.prefill = {c.workload.tokens};
  } else {
    b.contexts = {c.workload.context};
  }
  return b;
}

void check_listable_path(const std::string& path, const std::string& key) {
  if (path.find(',') == std::string::npos) return;
  throw ConfigError(fmt::format("'{}': {} holds a comma; the latency stage passes model paths as a comma-separated list",
                                key, path),
                    "rename the folder, or give a symbolic link to it without a comma");
}

BenchOptions workload_latency(const RunConfig& c, std::vector<std::string> models) {
  for (const std::string& m : models) check_listable_path(m, "model");
  BenchOptions b = workload_bench(c, "");
  b.models = std::move(models);
  b.rounds = c.eval.bench_rounds;
  return b;
}

std::optional<double> latency_of(const Json& latency, const std::string& model, bool prefill) {
  if (!latency.is_object() || !latency.contains("models") || !latency["models"].is_array()) return std::nullopt;
  const char* key = prefill ? "prefill" : "decode";
  for (const Json& m : latency["models"]) {
    if (string_or(m, "model", "") != model) continue;
    if (!m.contains(key) || !m[key].is_array() || m[key].empty() || !m[key][0].is_object()) return std::nullopt;
    const auto it = m[key][0].find("ms_best");
    if (it == m[key][0].end() || !it->is_number() || !(it->get<double>() > 0)) return std::nullopt;
    return it->get<double>();
  }
  return std::nullopt;
}

namespace {

// The original's and the found model's latency in the run's latency log (0 when absent).
struct Measured {
  double original_ms = 0, found_ms = 0;
  int64_t rounds = 0;
};
Measured measured(const RunConfig& c, const RunPlan& p) {
  const Json log = read_json_or_null(p.run_dir + "/logs/latency.json");
  const bool prefill = c.workload.kind == "prefill";
  // The latency stage's two models: the original and the found one (their GGUF files with llama.cpp).
  const std::vector<std::string>& m = p.latency.models;
  return {latency_of(log, m.at(0), prefill).value_or(0.0), latency_of(log, m.at(1), prefill).value_or(0.0),
          get_int(log, "rounds", p.run_dir + "/logs/latency.json").value_or(0)};
}

}  // namespace

std::string run_directory(const RunCommandOptions& o, const RunConfig& c) {
  if (!o.out.empty()) return o.out;
  if (!c.run_dir.empty()) return c.run_dir;
  return "runs/" + fs::path(o.config.str()).stem().string();
}

ImportanceOptions importance_options(const RunConfig& c, const std::string& permuted) {
  ImportanceOptions o;
  o.run = stage_model(c, c.model, c.device);
  o.calib = c.data.calibration;
  o.out.value = permuted;
  o.importance = c.importance;
  o.seed = c.seed;
  return o;
}

ProfileStageOptions profile_options(const RunConfig& c, const std::string& permuted, const std::string& table) {
  ProfileStageOptions o;
  o.run = stage_model(c, "", c.target_torch_device());
  if (c.llamacpp()) o.runtime = "llama.cpp";  // ggml's kernels with the config's threads
  o.config.value = permuted + "/config.json";
  o.space = c.search_space;
  o.out.value = table;
  o.workload = c.workload;
  o.profile = c.profile;
  o.seed = c.seed;
  return o;
}

ExportOptions gguf_export_options(const RunConfig& c, const std::string& model, const std::string& out) {
  ExportOptions e;
  e.run = stage_model(c, model, "cpu");
  e.to = "gguf";
  e.embedding_type = "f16";
  e.out.value = out;
  return e;
}

RunPlan plan_run(const RunConfig& c, const std::string& run_dir) {
  RunPlan p;
  p.run_dir = run_dir;
  p.permuted = run_dir + "/permuted";
  p.search_dir = run_dir + "/search";
  p.exported = run_dir + "/model";
  p.table = c.table.empty() ? run_dir + "/table.json" : c.table.str();

  p.importance = importance_options(c, p.permuted);
  if (c.table.empty()) p.profile = profile_options(c, p.permuted, p.table);
  SearchOptions& s = p.search;
  s.run = stage_model(c, p.permuted, c.device);
  s.importance.value = p.permuted + "/importance.json";
  s.space = c.search_space;
  s.table.value = p.table;
  s.text.value = c.train_text();
  s.out.value = p.search_dir;
  s.workload = c.workload;
  s.budget = c.budget;
  s.search = c.search;
  s.seed = c.seed;
  s.target_device = c.target_device;
  FinetuneStageOptions& f = p.finetune;
  f.run = stage_model(c, p.permuted, c.device);
  f.arch.value = p.search_dir + "/arch.json";
  f.text.value = c.train_text();
  f.out.value = p.exported;
  f.finetune = c.finetune;
  f.seed = c.seed;
  if (c.llamacpp()) {
    p.export_original = gguf_export_options(c, c.model, run_dir + "/original-f16.gguf");
    p.export_found = gguf_export_options(c, p.exported, run_dir + "/export/model.gguf");
    p.latency = workload_latency(c, {p.export_original->out, p.export_found->out});
  } else {
    p.latency = workload_latency(c, {c.model, p.exported});
  }
  if (!c.data.eval.empty()) {
    PplOptions po;
    po.run = stage_model(c, c.model, c.device);
    po.text = c.data.eval;
    po.ppl = c.eval.ppl;
    p.ppl_original = po;
    po.run.model.value = p.exported;
    po.teacher = c.model;  // KL of the found model to the original over the same predictions
    p.ppl_found = po;
  }
  if (!c.eval.tasks.empty()) {
    // In jointnas's runtime on the found model's exported weights (a GGUF's blocks are the same
    // numbers: docs/export.md), the original likewise.
    TasksOptions t;
    t.run = stage_model(c, c.model, c.device);
    t.tasks = c.eval.tasks;
    t.limit = c.eval.task_limit;
    t.task_dir = c.eval.task_dir;
    t.data_dir = c.eval.task_data;
    p.tasks_original = t;
    t.run.model.value = p.exported;
    p.tasks_found = t;
  }
  for (const std::string& to : c.export_to) {
    if (to == "gguf" && p.export_found) continue;  // written before the latency stage already
    ExportOptions e;
    e.run = stage_model(c, p.exported, "cpu");
    e.to = to;
    e.out.value = p.run_dir + (to == "gguf" ? "/export/model.gguf" : "/export/hf");
    p.exports.push_back(e);
  }
  return p;
}

StageJob gguf_job(const std::string& name, const ExportOptions& e, const std::string& logs) {
  // The log is named by what is written (a closed-loop round's export replaces the first one's).
  const std::string what = name.substr(name.rfind("export_"));
  return stage_job(name, {"export", "--format", "json"}, e, logs + what + ".json");
}

std::vector<StageJob> export_jobs(const RunPlan& p) {
  std::vector<StageJob> jobs;
  for (const ExportOptions& e : p.exports) {
    jobs.push_back(stage_job("export_" + e.to, {"export", "--format", "json"}, e,
                             p.run_dir + "/logs/export_" + e.to + ".json"));
  }
  return jobs;
}

std::vector<StageJob> stage_jobs(const RunPlan& p) {
  const std::string logs = p.run_dir + "/logs/";
  std::vector<StageJob> jobs;
  jobs.push_back(stage_job("importance", {"importance"}, p.importance, logs + "importance.json"));
  if (p.profile) jobs.push_back(stage_job("profile", {"profile"}, *p.profile, logs + "profile.json"));
  jobs.push_back(stage_job("search", {"search", "--format", "json"}, p.search, logs + "search.json"));
  jobs.push_back(stage_job("finetune", {"finetune", "--format", "json"}, p.finetune, logs + "finetune.json"));
  // Target llama.cpp: the two GGUF files the latency stage times.
  if (p.export_original) jobs.push_back(gguf_job("export_original", *p.export_original, logs));
  if (p.export_found) jobs.push_back(gguf_job("export_found", *p.export_found, logs));
  jobs.push_back(stage_job("latency", {"bench", "--format", "json"}, p.latency, logs + "latency.json"));
  if (p.ppl_original) {
    jobs.push_back(stage_job("ppl_original", {"eval", "ppl", "--format", "json"}, *p.ppl_original, logs + "ppl_original.json"));
    jobs.push_back(stage_job("ppl_found", {"eval", "ppl", "--format", "json"}, *p.ppl_found, logs + "ppl_found.json"));
  }
  if (p.tasks_original) {
    jobs.push_back(stage_job("tasks_original", {"eval", "tasks", "--format", "json"}, *p.tasks_original,
                             logs + "tasks_original.json"));
    jobs.push_back(stage_job("tasks_found", {"eval", "tasks", "--format", "json"}, *p.tasks_found, logs + "tasks_found.json"));
  }
  return jobs;
}

std::optional<double> closed_loop_budget(double budget_ms, double measured, double predicted, double aim) {
  if (budget_ms <= 0 || measured <= 0 || predicted <= 0 || measured <= budget_ms) return std::nullopt;
  return budget_ms * predicted / measured * aim;
}

report::RunSummary collect_summary(const RunConfig& c, const std::string& run_dir, const Json& stages) {
  const Json arch = read_json_or_null(run_dir + "/search/arch.json");
  const Json search = read_json_or_null(run_dir + "/logs/search.json");
  JNAS_CHECK_IO(arch.is_object() && search.is_object(), "{}: the search's outputs are missing; rerun", run_dir);
  const Measured lat = measured(c, plan_run(c, run_dir));
  auto positive = [](double v) { return v > 0 ? std::optional<double>(v) : std::nullopt; };
  auto ppl = [&](const char* log) -> std::optional<double> {
    const Json j = read_json_or_null(run_dir + "/logs/" + log);
    return j.is_object() && j.contains("ppl") && j["ppl"].is_number() ? std::optional<double>(j["ppl"].get<double>())
                                                                     : std::nullopt;
  };
  report::RunSummary s;
  s.run_dir = run_dir;
  s.workload = arch.value("workload", Json::object());
  s.budget = arch.value("budget", Json::object());
  s.budget_latency_ms = stages.value("budget_latency_ms", s.budget.value("latency_ms", 0.0));
  s.budget_text = c.budget.latency;
  s.dense = search.value("dense", Json::object());
  s.predicted = arch.value("predicted", Json::object());
  s.measured_original_ms = positive(lat.original_ms);
  s.measured_found_ms = positive(lat.found_ms);
  s.measured_rounds = lat.rounds;
  if (c.llamacpp()) {
    const Json log = read_json_or_null(run_dir + "/logs/latency.json");
    s.measured_runtime = "llama.cpp";
    s.measured_runtime_version = log.is_object() ? log.value("llama_cpp", std::string()) : "";
    s.measured_threads = log.is_object() ? log.value("threads", int64_t{0}) : 0;
  }
  s.ppl_original = ppl("ppl_original.json");
  s.ppl_found = ppl("ppl_found.json");
  s.eval_text = c.data.eval.empty() ? "" : fs::path(c.data.eval.str()).filename().string();
  s.tasks_original = read_json_or_null(run_dir + "/logs/tasks_original.json");
  s.tasks_found = read_json_or_null(run_dir + "/logs/tasks_found.json");
  s.steps_run = arch.value("steps_run", int64_t{0});
  s.stop_reason = arch.value("stop_reason", std::string("?"));
  s.selection = arch.value("selection", Json());
  s.budget_use = arch.value("budget_use", Json());
  const Json ft = read_json_or_null(run_dir + "/logs/finetune.json");
  if (ft.is_object() && ft.contains("kd_first")) s.kd_first = ft.value("kd_first", 0.0), s.kd_last = ft.value("kd_last", 0.0);
  const Json& cfg = arch.contains("config") ? arch["config"] : Json::object();
  s.layer_specs = cfg.value("jointnas_layer_specs", Json::array());
  s.hidden_size = cfg.value("hidden_size", int64_t{0});
  const Json dense_cfg = read_json_or_null(run_dir + "/permuted/config.json");
  s.hidden_size_original = dense_cfg.is_object() ? dense_cfg.value("hidden_size", int64_t{0}) : 0;
  return s;
}

std::string write_run_report(const RunConfig& c, const std::string& run_dir, const Json& stages) {
  const report::RunSummary s = collect_summary(c, run_dir, stages);
  const std::string md = report::summary_markdown(s);
  write_file_atomic(run_dir + "/summary.md", md);
  write_file_atomic(run_dir + "/summary.json", report::summary_json(s).dump(2) + "\n");
  write_file_atomic(run_dir + "/report.svg", report::architecture_svg(s.layer_specs));
  return md;
}

std::string run_pipeline(const RunConfig& c, const std::string& config_text, const std::string& run_dir,
                         int64_t closed_loop, const std::atomic<bool>& interrupt) {
  // Issue 26: a run directory holding an input would have it overwritten by the export (the
  // "original" then measured the found model); two runs in one directory would race.
  check_output_separate(run_dir, "run_dir",
                        {{c.model, "model"}, {c.search_space, "search_space"}, {c.data.calibration, "data.calibration"},
                         {c.data.train, "data.train"}, {c.data.eval, "data.eval"}});
  check_listable_path(c.model, "model");
  check_listable_path(run_dir, "run_dir");
  const DirLock lock = DirLock::acquire(run_dir, "jointnas run (" + c.source + ")");
  std::error_code ec;
  fs::create_directories(fs::path(run_dir) / "logs", ec);
  if (!ec && (c.llamacpp() || !c.export_to.empty())) fs::create_directories(fs::path(run_dir) / "export", ec);
  JNAS_CHECK_IO(!ec, "cannot create the run directory {}: {}", run_dir, ec.message());
  Stages st(run_dir + "/stages.json", interrupt);
  Json& stages = st.json();
  // The config is part of the run: a different config in the same directory is refused.
  if (stages.contains("config")) {
    JNAS_CHECK_CONFIG(stages["config"] == config_text,
                      "{} was started with another config; use a new run directory (--out) or delete it", run_dir);
  }
  stages["config"] = config_text;
  st.save();
  RunPlan plan = plan_run(c, run_dir);
  for (const StageJob& job : stage_jobs(plan)) {
    st.run(job);
    if (job.name == "search" && !stages.contains("budget_latency_ms")) {
      // The user's latency budget in ms (a "0.6x" resolved by the search), before any correction.
      stages["budget_latency_ms"] = read_json_file(plan.search_dir + "/arch.json")["budget"].value("latency_ms", 0.0);
      st.save();
    }
  }
  const double table_budget_ms = stages.value("budget_latency_ms", 0.0);
  const int64_t rounds = closed_loop >= 0 ? closed_loop : c.closed_loop;
  for (int64_t k = 1; k <= rounds; ++k) {
    // A relative budget is held against the original measured in the same rounds as the found
    // model (each closed-loop round measures both again), not against the table's ms.
    const Measured lat = measured(c, plan);
    const double budget_ms = report::measured_latency_budget(
        c.budget.latency, table_budget_ms,
        lat.original_ms > 0 ? std::optional<double>(lat.original_ms) : std::nullopt);
    const double measured = lat.found_ms;
    if (budget_ms <= 0) break;
    const double predicted = read_json_file(plan.search_dir + "/arch.json")["predicted"].value("latency_ms", 0.0);
    const std::optional<double> corrected = closed_loop_budget(budget_ms, measured, predicted);
    if (!corrected) break;
    JNAS_LOG_WARN("[run] the found model measures {:.4f} ms against the {:.4f} ms budget (table: {:.4f} ms); round {}: "
                  "holding the table to {:.4f} ms",
                  measured, budget_ms, predicted, k, *corrected);
    RunPlan again = plan;
    again.search.budget.latency = fmt::format("{:.6f}", *corrected);
    // The corrected budget is in the table's milliseconds: the measured fit would read it as a
    // measured one (on the CPU the table's ms are not the machine's) and grow past the budget.
    again.search.search.selection.measured_fit = 0;
    try {
      // The same logs: the report reads the latest.
      const std::string logs = run_dir + "/logs/";
      const std::string pre = fmt::format("closed_loop_{}_", k);
      st.run(stage_job(pre + "search", {"search", "--format", "json"}, again.search, logs + "search.json"));
      st.run(stage_job(pre + "finetune", {"finetune", "--format", "json"}, again.finetune, logs + "finetune.json"));
      if (again.export_found) st.run(gguf_job(pre + "export_found", *again.export_found, logs));
      st.run(stage_job(pre + "latency", {"bench", "--format", "json"}, again.latency, logs + "latency.json"));
      if (again.ppl_found) {
        st.run(stage_job(pre + "ppl_found", {"eval", "ppl", "--format", "json"}, *again.ppl_found, logs + "ppl_found.json"));
      }
      if (again.tasks_found) {
        st.run(stage_job(pre + "tasks_found", {"eval", "tasks", "--format", "json"}, *again.tasks_found,
                         logs + "tasks_found.json"));
      }
    } catch (const Interrupted&) {
      throw;
    } catch (const Error&) {
      // Typically the corrected budget is below what the space can reach: report what was
      // measured (the report says the budget is missed), then fail.
      write_run_report(c, run_dir, stages);
      throw IoError(fmt::format("closed-loop round {} could not meet the {:.4f} ms budget on this device (the found "
                                "model measures {:.4f} ms, the table predicted {:.4f} ms); see the error above and {}/summary.md",
                                k, budget_ms, measured, predicted, run_dir));
    }
  }
  // The report first: an export that GGUF or DeciLM cannot hold (exit 2, naming the layer) leaves
  // the run's results in place.
  auto summary = write_run_report(c, run_dir, stages);
  for (const StageJob& job : export_jobs(plan)) st.run(job);
  return summary;
}

}  // namespace jointnas::pipeline
