// `jointnas eval ppl`: perplexity of a text file under an explicit protocol.
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/eval/perplexity.h"

namespace jointnas::cli {
namespace {

struct PplFlags {
  RunFlags run;
  std::string text;
  eval::PplProtocol protocol;
  bool no_bos = false, no_eos = false;
};

void run_ppl(PplFlags& f) {
  f.protocol.add_bos = !f.no_bos;
  f.protocol.add_eos = !f.no_eos;
  f.protocol.validate();
  const std::string text = read_text_file(f.text);
  LoadedModel lm = load_model(f.run, /*need_tokenizer=*/true);
  const auto& cfg = lm.ckpt.config;
  const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : lm.tokenizer->bos_id();
  const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : lm.tokenizer->eos_id();
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
  eval::PplResult r = eval::perplexity(*lm.model, stream, f.protocol, progress);
  r.documents = static_cast<int64_t>(docs.size());
  Json j{{"nll", r.nll},
         {"ppl", r.ppl},
         {"tokens", r.tokens},
         {"windows", r.windows},
         {"stream_tokens", r.stream_tokens},
         {"documents", r.documents},
         {"protocol",
          {{"documents", f.protocol.documents},
           {"add_bos", f.protocol.add_bos},
           {"add_eos", f.protocol.add_eos},
           {"window", f.protocol.window},
           {"stride", f.protocol.stride == 0 ? f.protocol.window : f.protocol.stride}}}};
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("nll {:.5f} | ppl {:.3f} | {} predictions in {} windows of {} | {}\n",
                             r.nll, r.ppl, r.tokens, r.windows, f.protocol.window, f.text);
  });
}

}  // namespace

void register_eval(CLI::App& app) {
  auto* ev = app.add_subcommand("eval", "Evaluate a model");
  ev->require_subcommand(1);
  auto f = std::make_shared<PplFlags>();
  auto* sub = ev->add_subcommand("ppl", "Perplexity of a text file (protocol in docs/cli.md)");
  add_run_flags(sub, f->run);
  sub->add_option("--text", f->text, "UTF-8 text file")->required();
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
}

}  // namespace jointnas::cli
