// `jointnas eval ppl`: perplexity of a text file under an explicit protocol (optionally against a
// teacher); `jointnas eval tasks`: multiple-choice tasks with lm-eval semantics (docs/eval.md).
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/eval/task_eval.h"

namespace jointnas::cli {
namespace {

struct PplFlags {
  RunFlags run;
  std::string text;
  std::string protocol_name = "stream";
  std::string teacher;
  eval::PplProtocol protocol;  // the flags' values; a named protocol replaces those not given
  bool no_bos = false, no_eos = false;
  CLI::App* app = nullptr;  // to ask which flags were given
};

// The protocol to run: the named preset, with every flag the user gave on top of it.
eval::PplProtocol resolve_protocol(const PplFlags& f, int64_t context, int64_t bos) {
  eval::PplProtocol p = eval::ppl_protocol(f.protocol_name, context, bos);
  auto given = [&](const char* flag) { return f.app->count(flag) > 0; };
  if (f.protocol_name == "stream" || given("--documents")) p.documents = f.protocol.documents;
  if (f.protocol_name == "stream" || given("--window")) p.window = f.protocol.window;
  if (f.protocol_name == "stream" || given("--stride")) p.stride = f.protocol.stride;
  if (f.no_bos) p.add_bos = false;
  if (f.no_eos) p.add_eos = false;
  if (p.window_bos_id >= 0 && given("--window")) p.score_first = p.window / 2;
  p.max_windows = f.protocol.max_windows;
  p.batch = f.protocol.batch;
  p.validate();
  return p;
}

void run_ppl(PplFlags& f) {
  const std::string text = read_text_file(f.text);
  LoadedModel lm = load_model(f.run, /*need_tokenizer=*/true);
  const auto& cfg = lm.ckpt.config;
  const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : lm.tokenizer->bos_id();
  const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : lm.tokenizer->eos_id();
  f.protocol = resolve_protocol(f, cfg.max_position_embeddings, bos);
  std::unique_ptr<model::LlamaModel> teacher;
  if (!f.teacher.empty()) {
    RunFlags tf = f.run;
    tf.model = f.teacher;
    teacher = std::move(load_model(tf, /*need_tokenizer=*/false).model);
  }
  auto docs = eval::split_documents(text, f.protocol.documents);
  auto stream = eval::build_stream(docs, *lm.tokenizer, f.protocol, bos, eos);
  JNAS_LOG_INFO("[eval ppl] {}: {} documents, {} tokens", f.text, docs.size(), stream.size());
  int64_t last_pct = -1;
  auto progress = [&](int64_t done, int64_t total) {
    int64_t pct = 100 * done / total;
    if (pct / 10 != last_pct / 10) {
      JNAS_LOG_INFO("[eval ppl] window {}/{} ({}%)", done, total, pct);
      last_pct = pct;
    }
  };
  eval::PplResult r = eval::perplexity(*lm.model, stream, f.protocol, progress, teacher.get());
  r.documents = static_cast<int64_t>(docs.size());
  Json j{{"nll", r.nll},
         {"ppl", r.ppl},
         {"tokens", r.tokens},
         {"windows", r.windows},
         {"stream_tokens", r.stream_tokens},
         {"documents", r.documents},
         {"protocol",
          {{"name", f.protocol_name},
           {"documents", f.protocol.documents},
           {"add_bos", f.protocol.add_bos},
           {"add_eos", f.protocol.add_eos},
           {"window", f.protocol.window},
           {"stride", f.protocol.stride == 0 ? f.protocol.window : f.protocol.stride},
           {"window_bos", f.protocol.window_bos_id >= 0},
           {"score_first", f.protocol.score_first}}}};
  if (r.has_teacher) {
    j["teacher"] = {{"model", f.teacher}, {"kl", r.kl_teacher}, {"top1_agreement", r.top1_agreement}};
  }
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("nll {:.5f} | ppl {:.3f} | {} predictions in {} windows of {} ({}) | {}",
                             r.nll, r.ppl, r.tokens, r.windows, f.protocol.window, f.protocol_name,
                             f.text);
    if (r.has_teacher) {
      std::cout << fmt::format(" | KL(teacher) {:.5f} | top-1 agreement {:.4f}", r.kl_teacher,
                               r.top1_agreement);
    }
    std::cout << "\n";
  });
}

struct TaskFlags {
  RunFlags run;
  std::string tasks;
  std::string task_dir = "configs/tasks";
  std::string data_dir = "../shared/data/tasks";
  std::string out;
  int64_t limit = 0;
  int64_t batch = 16;
  int64_t num_fewshot = -1;
  int64_t max_length = 0;
  bool items = false;
  // Throughput at a model's shapes without its weights (never for accuracy).
  bool random_weights = false;
  std::string config, tokenizer;
  uint64_t seed = 0;
};

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
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0) return name;
  const std::string path = (std::filesystem::path(f.task_dir) / (name + ".yaml")).string();
  if (!std::filesystem::exists(path)) {
    throw ConfigError(fmt::format("no task file for '{}' ({} not found)", name, path),
                      "run from the repository root, or pass --task-dir <repo>/configs/tasks");
  }
  return path;
}

std::string fmt_metric(const Json& j, const std::string& m) {
  if (!j.contains(m)) return "|  |  ";
  const Json& se = j[m + "_stderr"];
  return fmt::format("| {:.4f} | {} ", j[m].get<double>(),
                     se.is_number() ? fmt::format("{:.4f}", se.get<double>()) : "n/a");
}

void run_tasks(TaskFlags& f) {
  JNAS_CHECK_CONFIG(f.limit >= 0, "--limit must be >= 0, got {}", f.limit);
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
  // lm-eval's tok_encode adds BOS exactly when the tokenizer's add_special_tokens does.
  const int64_t bos = !lm.tokenizer->add_bos() ? -1
                      : cfg.bos_token_id >= 0  ? cfg.bos_token_id
                                               : lm.tokenizer->bos_id();
  Json results = Json::array();
  for (auto& tc : cfgs) {
    eval::TaskEvalOptions o;
    o.data_dir = f.data_dir;
    o.limit = f.limit;
    o.num_fewshot = f.num_fewshot;
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
    JNAS_LOG_INFO("[eval tasks] {} | {} items, {} requests in {:.1f} s | {:.1f} items/s", r.task,
                  r.n, r.requests, r.seconds, r.n / std::max(r.seconds, 1e-9));
    Json j = eval::task_result_json(r, f.items);
    j["num_fewshot"] = f.num_fewshot >= 0 ? f.num_fewshot : tc.num_fewshot;
    j["items_per_s"] = r.n / std::max(r.seconds, 1e-9);
    j["config"] = tc.source;
    results.push_back(std::move(j));
  }
  Json out{{"model", f.run.model},
           {"device", f.run.device},
           {"limit", f.limit},
           {"batch", f.batch},
           {"data_dir", f.data_dir},
           {"results", results}};
  if (!f.out.empty()) {
    write_file_atomic(f.out, out.dump(1) + "\n");
  }
  emit(f.run.format, out, [&] {
    // The markdown table lm-eval prints: one row per task, the metrics its file reports.
    std::cout << "| task | n | shots | acc | ± | acc_norm | ± | items/s |\n"
              << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Json& j = results[i];
      Json shown = j;
      for (const char* m : {"acc", "acc_norm"}) {
        const auto& ms = cfgs[i].metrics;
        if (std::find(ms.begin(), ms.end(), m) == ms.end()) shown.erase(m);
      }
      std::cout << fmt::format("| {} | {} | {} ", j["task"].get<std::string>(), j["n"].get<int64_t>(),
                               j["num_fewshot"].get<int64_t>())
                << fmt_metric(shown, "acc") << fmt_metric(shown, "acc_norm")
                << fmt::format("| {:.1f} |\n", j["items_per_s"].get<double>());
    }
  });
}

}  // namespace

void register_eval(CLI::App& app) {
  auto* ev = app.add_subcommand("eval", "Evaluate a model");
  ev->require_subcommand(1);
  auto f = std::make_shared<PplFlags>();
  auto* sub = ev->add_subcommand("ppl", "Perplexity of a text file (protocol in docs/cli.md)");
  add_run_flags(sub, f->run);
  f->app = sub;
  sub->add_option("--text", f->text, "UTF-8 text file")->required();
  sub->add_option("--protocol", f->protocol_name,
                  "stream (documents, BOS/EOS, window 513) | gptq (whole text, BOS once, windows "
                  "of the model's context) | llamacpp (n_ctx 512, BOS per window, second half "
                  "scored); explicit flags override the preset (docs/eval.md)")
      ->check(CLI::IsMember({"stream", "gptq", "llamacpp"}))
      ->capture_default_str();
  sub->add_option("--teacher", f->teacher,
                  "Reference model (same tokenizer): adds KL(teacher || model) and top-1 agreement");
  sub->add_option("--documents", f->protocol.documents, "paragraphs | lines | whole")
      ->capture_default_str();
  sub->add_flag("--no-bos", f->no_bos, "Do not put BOS before each document");
  sub->add_flag("--no-eos", f->no_eos, "Do not put EOS after each document");
  sub->add_option("--window", f->protocol.window, "Tokens per window (window-1 predictions)")
      ->capture_default_str();
  sub->add_option("--stride", f->protocol.stride, "Window step (0 = window: non-overlapping)")
      ->capture_default_str();
  sub->add_option("--max-windows", f->protocol.max_windows, "Score only the first N windows (0 = all)");
  sub->add_option("--batch", f->protocol.batch, "Windows per forward pass")->capture_default_str();
  sub->callback([f] { run_ppl(*f); });

  auto t = std::make_shared<TaskFlags>();
  auto* ts = ev->add_subcommand("tasks", "Multiple-choice tasks with lm-eval semantics (docs/eval.md)");
  add_run_flags(ts, t->run, /*model_required=*/false);
  ts->add_flag("--random-weights", t->random_weights,
               "Random weights at --config's shapes with --tokenizer (throughput only)");
  ts->add_option("--config", t->config, "config.json whose shapes to run (with --random-weights)");
  ts->add_option("--tokenizer", t->tokenizer, "Tokenizer directory (with --random-weights)");
  ts->add_option("--seed", t->seed, "Seed of the random weights")->capture_default_str();
  ts->add_option("--tasks", t->tasks,
                 "Comma-separated task names (<task-dir>/<name>.yaml) or task files: boolq, piqa, "
                 "hellaswag, winogrande, arc_easy, arc_challenge, mmlu, mmlu_5shot")
      ->required();
  ts->add_option("--task-dir", t->task_dir, "Directory of task files")->capture_default_str();
  ts->add_option("--data-dir", t->data_dir, "Root of the task data (task paths are relative to it)")
      ->capture_default_str();
  ts->add_option("--limit", t->limit, "First N documents of each task (of each MMLU subject); 0 = all")
      ->capture_default_str();
  ts->add_option("--batch", t->batch, "Distinct model inputs per forward pass")->capture_default_str();
  ts->add_option("--num-fewshot", t->num_fewshot, "Override the task files' num_fewshot (-1 = keep)")
      ->capture_default_str();
  ts->add_option("--max-length", t->max_length,
                 "Token limit of one input (0 = max_position_embeddings); longer ones are cut "
                 "from the left, as lm-eval does")
      ->capture_default_str();
  ts->add_option("--out", t->out, "Write the results JSON here");
  ts->add_flag("--items", t->items, "Include per-item log-likelihoods and decisions in the JSON");
  ts->callback([t] { run_tasks(*t); });
}

}  // namespace jointnas::cli
