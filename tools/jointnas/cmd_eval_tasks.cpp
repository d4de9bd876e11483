// `jointnas eval tasks`: lm-evaluation-harness task files (multiple_choice, loglikelihood,
// loglikelihood_rolling) on local data, with lm-eval's numbers (docs/eval.md). A thin adapter:
// flags -> eval::evaluate_task -> table / JSON.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/task_data.h"
#include "jointnas/eval/task_eval.h"

namespace jointnas::cli {
namespace {
namespace fs = std::filesystem;

struct TaskFlags {
  RunFlags run;
  std::string tasks;
  std::string task_dir;  // default: $JNAS_TASK_DIR, else <project>/configs/tasks
  std::string data_dir;  // default: $JNAS_DATA_DIR, else <project>/../shared/data
  std::string out;
  int64_t limit = 0;
  int64_t batch = 16;
  int64_t num_fewshot = -1;
  int64_t max_length = 0;
  int64_t bootstrap_iters = 100000;
  bool items = false;
  // Throughput at a model's shapes without its weights (never for accuracy).
  bool random_weights = false;
  std::string config, tokenizer;
  uint64_t seed = 0;
};

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "" : p.string();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t e = s.find(',', start);
    if (e == std::string::npos) e = s.size();
    if (e > start) out.push_back(s.substr(start, e - start));
    start = e + 1;
  }
  return out;
}

// A task name is <task-dir>/<name>.yaml; anything ending in .yaml is a path.
std::string task_file(const TaskFlags& f, const std::string& name) {
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0) {
    if (!file_exists(name)) throw IoError(fmt::format("task file '{}' not found", name));
    return name;
  }
  const std::string path = (fs::path(f.task_dir) / (name + ".yaml")).string();
  if (!file_exists(path)) {
    std::string have;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(f.task_dir, ec)) {
      if (e.path().extension() == ".yaml") have += (have.empty() ? "" : ", ") + e.path().stem().string();
    }
    throw ConfigError(fmt::format("no task file for '{}' ({} not found; tasks there: {})", name, path,
                                  have.empty() ? "none" : have),
                      "pass --task-dir DIR (or set JNAS_TASK_DIR), or give the task file's path (NAME.yaml)");
  }
  return path;
}

std::string fmt_value(const Json& j, const std::string& key) {
  return j.contains(key) && j[key].is_number() ? fmt::format("{:.4f}", j[key].get<double>()) : "N/A";
}

void run_tasks(TaskFlags& f) {
  JNAS_CHECK_CONFIG(f.limit >= 0, "--limit must be >= 0, got {}", f.limit);
  JNAS_CHECK_CONFIG(f.bootstrap_iters >= 0, "--bootstrap-iters must be >= 0, got {}", f.bootstrap_iters);
  if (f.task_dir.empty()) f.task_dir = eval::default_task_dir(self_exe());
  if (f.data_dir.empty()) f.data_dir = eval::default_data_dir(self_exe());
  std::vector<eval::TaskConfig> cfgs;
  for (const auto& name : split_commas(f.tasks)) cfgs.push_back(eval::load_task_config(task_file(f, name)));
  JNAS_CHECK_CONFIG(!cfgs.empty(), "--tasks is empty: expected e.g. boolq,piqa,hellaswag");
  LoadedModel lm;
  if (f.random_weights) {
    JNAS_CHECK_CONFIG(!f.config.empty() && !f.tokenizer.empty(),
                      "--random-weights needs --config CONFIG.json and --tokenizer DIR");
    lm.ckpt.config = model::LlamaConfig::from_file(f.config);
    JNAS_LOG_INFO("[eval tasks] random weights at the shapes of {} (throughput only)", f.config);
    lm.model = std::make_unique<model::LlamaModel>(
        model::LlamaModel::random(lm.ckpt.config, runtime_options(f.run), f.seed));
    lm.tokenizer = tok::load_tokenizer(f.tokenizer);
    f.run.model = f.config + " (random weights)";
  } else {
    JNAS_CHECK_CONFIG(!f.run.model.empty(), "eval tasks needs --model, or --random-weights");
    lm = load_model(f.run, /*need_tokenizer=*/true);
  }
  const auto& cfg = lm.ckpt.config;
  const int64_t bos_id = cfg.bos_token_id >= 0 ? cfg.bos_token_id : lm.tokenizer->bos_id();
  const int64_t eos_id = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : lm.tokenizer->eos_id();
  // lm-eval's tok_encode adds BOS exactly when the tokenizer's add_special_tokens does; its
  // prefix_token_id (empty contexts, rolling windows) is BOS, else EOS.
  const int64_t bos = lm.tokenizer->add_bos() ? bos_id : -1;
  Json results = Json::array();
  for (const auto& tc : cfgs) {
    eval::TaskEvalOptions o;
    o.data_dir = f.data_dir;
    o.limit = f.limit;
    o.num_fewshot = f.num_fewshot;
    o.bootstrap_iters = f.bootstrap_iters;
    o.prefix_token = bos_id >= 0 ? bos_id : eos_id;
    o.score.batch = f.batch;
    o.score.max_length = f.max_length;
    int64_t last = -1;
    o.score.progress = [&](int64_t done, int64_t total) {
      const int64_t pct = 100 * done / total;
      if (pct / 10 != last / 10) {
        JNAS_LOG_INFO("[eval tasks] {} | batch {}/{} ({}%)", tc.task, done, total, pct);
        last = pct;
      }
    };
    eval::TaskResult r = eval::evaluate_task(*lm.model, *lm.tokenizer, bos, tc, o);
    JNAS_LOG_INFO("[eval tasks] {} | {} items, {} requests in {:.1f} s | {:.1f} items/s", r.task, r.n, r.requests,
                  r.seconds, r.n / std::max(r.seconds, 1e-9));
    Json j = eval::task_result_json(r, f.items);
    j["num_fewshot"] = f.num_fewshot >= 0 ? f.num_fewshot : tc.num_fewshot;
    j["items_per_s"] = r.n / std::max(r.seconds, 1e-9);
    j["config"] = tc.source;
    results.push_back(std::move(j));
  }
  Json out{{"model", f.run.model}, {"device", f.run.device},         {"limit", f.limit},
           {"batch", f.batch},     {"data_dir", f.data_dir},         {"task_dir", f.task_dir},
           {"bootstrap_iters", f.bootstrap_iters}, {"results", results}};
  if (!f.out.empty()) write_file_atomic(f.out, out.dump(1) + "\n");
  emit(f.run.format, out, [&] {
    // lm-eval's table: one row per task and metric.
    std::cout << "| task | n | shots | metric | value | ± | items/s |\n|---|---:|---:|---|---:|---:|---:|\n";
    for (const Json& j : results) {
      for (const auto& m : j["metrics"]) {
        const std::string name = m.get<std::string>();
        std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {:.1f} |\n", j["task"].get<std::string>(),
                                 j["n"].get<int64_t>(), j["num_fewshot"].get<int64_t>(), name, fmt_value(j, name),
                                 fmt_value(j, name + "_stderr"), j["items_per_s"].get<double>());
      }
    }
  });
}

}  // namespace

void register_eval_tasks(CLI::App* ev) {
  auto t = std::make_shared<TaskFlags>();
  auto* ts = ev->add_subcommand("tasks", "lm-evaluation-harness tasks on local data, lm-eval's numbers (docs/eval.md)");
  add_run_flags(ts, t->run, /*model_required=*/false);
  ts->add_flag("--random-weights", t->random_weights,
               "Random weights at --config's shapes with --tokenizer (throughput only)");
  ts->add_option("--config", t->config, "config.json whose shapes to run (with --random-weights)");
  ts->add_option("--tokenizer", t->tokenizer, "Tokenizer directory (with --random-weights)");
  ts->add_option("--seed", t->seed, "Seed of the random weights")->capture_default_str();
  ts->add_option("--tasks", t->tasks,
                 "Comma-separated task names (<task-dir>/<name>.yaml) or lm-eval task files: boolq, piqa, "
                 "hellaswag, winogrande, arc_easy, arc_challenge, mmlu, mmlu_5shot, lambada_openai, wikitext, ...")
      ->required();
  ts->add_option("--task-dir", t->task_dir,
                 "Directory of task files (default: $JNAS_TASK_DIR, else <repo>/configs/tasks of this binary's "
                 "checkout or the current directory)");
  ts->add_option("--data-dir", t->data_dir,
                 "Root of the task data; task files' paths are relative to it and may not leave it (default: "
                 "$JNAS_DATA_DIR, else <repo>/../shared/data)");
  ts->add_option("--limit", t->limit, "First N documents of each task (of each MMLU subject); 0 = all")
      ->capture_default_str();
  ts->add_option("--batch", t->batch, "Distinct model inputs per forward pass")->capture_default_str();
  ts->add_option("--num-fewshot", t->num_fewshot, "Override the task files' num_fewshot (-1 = keep)")
      ->capture_default_str();
  ts->add_option("--max-length", t->max_length,
                 "Token limit of one input (0 = max_position_embeddings); longer ones are cut from the left and "
                 "rolling perplexity windows use it, as lm-eval's max_length")
      ->capture_default_str();
  ts->add_option("--bootstrap-iters", t->bootstrap_iters,
                 "Bootstrap resamples for the perplexity standard error (lm-eval's default; 0 = no stderr)")
      ->capture_default_str();
  ts->add_option("--out", t->out, "Write the results JSON here");
  ts->add_flag("--items", t->items, "Include per-item log-likelihoods and decisions in the JSON");
  ts->callback([t] { run_tasks(*t); });
}

}  // namespace jointnas::cli
