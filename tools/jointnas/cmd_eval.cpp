// `jointnas eval ppl`: perplexity of a text file under an explicit protocol (optionally against a
// teacher); `jointnas eval tasks` is in cmd_eval_tasks.cpp (docs/eval.md).
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

namespace jointnas::cli {

void register_eval_tasks(CLI::App* eval);  // cmd_eval_tasks.cpp: `eval tasks`
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

  register_eval_tasks(ev);  // cmd_eval_tasks.cpp
}

}  // namespace jointnas::cli
