// `jointnas eval tasks`; see tasks_stage.h.
#include "jointnas/pipeline/tasks_stage.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/eval/task_data.h"
#include "jointnas/eval/task_eval.h"
#include "jointnas/pipeline/model_loading.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "" : p.string();
}

// A task name is <task-dir>/<name>.yaml; anything ending in .yaml is a path.
std::string task_file(const std::string& task_dir, const std::string& name) {
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0) {
    JNAS_CHECK_IO(file_exists(name), "task file '{}' not found", name);
    return name;
  }
  const std::string path = (fs::path(task_dir) / (name + ".yaml")).string();
  if (!file_exists(path)) {
    std::string have;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(task_dir, ec)) {
      if (e.path().extension() == ".yaml") have += (have.empty() ? "" : ", ") + e.path().stem().string();
    }
    throw ConfigError(fmt::format("no task file for '{}' ({} not found; tasks there: {})", name, path,
                                  have.empty() ? "none" : have),
                      "pass --task-dir DIR (or set JNAS_TASK_DIR), or give the task file's path (NAME.yaml)");
  }
  return path;
}

LoadedModel load(const TasksOptions& o) {
  if (!o.random_weights) {
    JNAS_CHECK_CONFIG(!o.run.model.empty(), "eval tasks needs --model, or --random-weights");
    return load_model(o.run, /*need_tokenizer=*/true);
  }
  JNAS_CHECK_CONFIG(!o.config.empty() && !o.tokenizer.empty(), "--random-weights needs --config CONFIG.json and --tokenizer DIR");
  LoadedModel lm;
  lm.ckpt.config = model::LlamaConfig::from_file(o.config);
  JNAS_LOG_INFO("[eval tasks] random weights at the shapes of {} (throughput only)", o.config.str());
  lm.model = std::make_unique<model::LlamaModel>(
      model::LlamaModel::random(lm.ckpt.config, runtime_options(o.run), static_cast<uint64_t>(o.seed)));
  lm.tokenizer = tok::load_tokenizer(o.tokenizer);
  return lm;
}

}  // namespace

Json run_tasks(const TasksOptions& o) {
  const std::string task_dir = o.task_dir.empty() ? eval::default_task_dir(self_exe()) : o.task_dir.str();
  const std::string data_dir = o.data_dir.empty() ? eval::default_data_dir(self_exe()) : o.data_dir.str();
  std::vector<eval::TaskConfig> cfgs;
  for (const auto& name : o.tasks) cfgs.push_back(eval::load_task_config(task_file(task_dir, name)));
  JNAS_CHECK_CONFIG(!cfgs.empty(), "--tasks is empty: expected e.g. boolq,piqa,hellaswag");
  LoadedModel lm = load(o);
  const auto& cfg = lm.ckpt.config;
  const int64_t bos_id = data::bos_id(cfg, *lm.tokenizer), eos_id = data::eos_id(cfg, *lm.tokenizer);
  // lm-eval's tok_encode adds BOS exactly when the tokenizer's add_special_tokens does; its
  // prefix_token_id (empty contexts, rolling windows) is BOS, else EOS.
  const int64_t bos = lm.tokenizer->add_bos() ? bos_id : -1;
  Json results = Json::array();
  for (auto& tc : cfgs) {
    eval::TaskEvalOptions eo;
    eo.data_dir = data_dir;
    eo.limit = o.limit;
    eo.num_fewshot = o.num_fewshot;
    eo.bootstrap_iters = o.bootstrap_iters;
    eo.prefix_token = bos_id >= 0 ? bos_id : eos_id;
    eo.score.batch = o.batch;
    eo.score.max_length = o.max_length;
    int64_t last = -1;
    eo.score.progress = [&](int64_t done, int64_t total) {
      const int64_t pct = 100 * done / total;
      if (pct / 10 != last / 10) {
        JNAS_LOG_INFO("[eval tasks] {} | batch {}/{} ({}%)", tc.task, done, total, pct);
        last = pct;
      }
    };
    const eval::TaskResult r = eval::evaluate_task(*lm.model, *lm.tokenizer, bos, tc, eo);
    JNAS_LOG_INFO("[eval tasks] {} | {} items, {} requests in {:.1f} s | {:.1f} items/s", r.task, r.n, r.requests, r.seconds,
                  r.n / std::max(r.seconds, 1e-9));
    Json j = eval::task_result_json(r, o.items);
    j["num_fewshot"] = o.num_fewshot >= 0 ? o.num_fewshot : tc.num_fewshot;
    j["items_per_s"] = r.n / std::max(r.seconds, 1e-9);
    j["config"] = tc.source;
    results.push_back(std::move(j));
  }
  const std::string model = o.random_weights ? o.config.str() + " (random weights)" : o.run.model.str();
  Json out{{"model", model},       {"device", o.run.device}, {"limit", o.limit},
           {"batch", o.batch},     {"data_dir", data_dir},   {"task_dir", task_dir},
           {"bootstrap_iters", o.bootstrap_iters}, {"results", results}};
  if (!o.out.empty()) write_file_atomic(o.out, out.dump(1) + "\n");
  return out;
}

}  // namespace jointnas::pipeline
