// The `eval ppl` stage; see ppl_stage.h.
#include "jointnas/pipeline/ppl_stage.h"

#include <cmath>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/eval/text_stream.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/pipeline/ppl_llamacpp.h"

namespace jointnas::pipeline {
namespace {

// The named preset with every explicit value on top of it.
eval::PplProtocol resolve(const PplSettings& s, int64_t context, int64_t bos) {
  eval::PplProtocol p = eval::ppl_protocol(s.protocol, context, bos);
  if (!s.documents.empty()) p.documents = s.documents;
  if (s.window > 0) p.window = s.window;
  if (s.stride >= 0) p.stride = s.stride;
  if (s.no_bos) p.add_bos = false;
  if (s.no_eos) p.add_eos = false;
  if (p.window_bos_id >= 0 && s.window > 0) p.score_first = p.window / 2;
  p.max_windows = s.max_windows;
  p.batch = s.batch;
  p.validate();
  return p;
}

}  // namespace

int64_t ppl_window(const PplSettings& s, int64_t context) {
  if (s.window > 0) return s.window;
  return eval::ppl_protocol(s.protocol, context, s.protocol == "llamacpp" ? 1 : -1).window;
}

namespace {

// The text streamed through `m` (either runtime): read and tokenized a block at a time, scored as
// it comes, read only until max_windows windows are had (eval/text_stream.h).
eval::FilePplResult score_text(const PplOptions& o, const eval::WindowModel& m, const tok::Tokenizer& tok,
                               const eval::PplProtocol& p, int64_t bos, int64_t eos) {
  int64_t last_pct = -1;
  auto progress = [&](int64_t done, double read) {
    const auto pct = static_cast<int64_t>(100 * read);
    if (pct / 10 != last_pct / 10) {
      JNAS_LOG_INFO("[eval ppl] {} windows scored, {}% of {} read", done, pct, o.text.str());
      last_pct = pct;
    }
  };
  const eval::FilePplResult fr = eval::perplexity_of_file(m, o.text, tok, p, bos, eos, progress);
  JNAS_LOG_INFO("[eval ppl] {}: {} documents, {} tokens{}", o.text.str(), fr.result.documents, fr.result.stream_tokens,
                fr.complete ? "" : " read (enough for --max-windows; the rest of the file was not read)");
  return fr;
}

Json ppl_json(const PplOptions& o, const eval::PplProtocol& p, const eval::FilePplResult& fr) {
  const eval::PplResult& r = fr.result;
  return Json{{"nll", r.nll},
              {"ppl", r.ppl},
              {"tokens", r.tokens},
              {"windows", r.windows},
              {"stream_tokens", r.stream_tokens},
              {"documents", r.documents},
              {"text_complete", fr.complete},
              {"text", o.text.str()},
              {"protocol",
               {{"name", o.ppl.protocol},
                {"documents", p.documents},
                {"add_bos", p.add_bos},
                {"add_eos", p.add_eos},
                {"window", p.window},
                {"stride", p.stride == 0 ? p.window : p.stride},
                {"window_bos", p.window_bos_id >= 0},
                {"score_first", p.score_first}}}};
}

// --runtime llama.cpp: the GGUF's tokenizer, BOS / EOS and context (n_ctx_train) from libllama.
Json run_ppl_llamacpp(const PplOptions& o) {
  JNAS_CHECK_CONFIG(o.teacher.empty(),
                    "eval ppl --runtime llama.cpp scores one GGUF file; --teacher (KL and top-1 agreement) is done by "
                    "the jointnas runtime: run `eval ppl --model MODEL --teacher TEACHER` on the model directories");
  JNAS_CHECK_CONFIG(o.run.device == "cpu", "eval ppl --runtime llama.cpp runs on the CPU (this build's libllama), got "
                                           "--device {}; leave --device out",
                    o.run.device);
  JNAS_CHECK_CONFIG(o.run.dtype.empty(), "eval ppl --runtime llama.cpp: a GGUF carries its own types; leave --dtype out");
  JNAS_CHECK_IO(!dir_exists(o.run.model),
                "--runtime llama.cpp scores a GGUF file, and {} is a directory: give its .gguf file (`jointnas export "
                "--to gguf {} --out FILE.gguf` writes one), or drop --runtime llama.cpp",
                o.run.model.str(), o.run.model.str());
  const llamacpp::Model m(o.run.model, static_cast<int>(o.run.threads));
  JNAS_LOG_INFO("[eval ppl] llama.cpp {} loaded {}: {} ({:.2f} M params), {} threads", llamacpp::version(),
                m.path(), m.description(), m.params() / 1e6, m.threads());
  const LlamaCppTokenizer tok(m);
  const eval::PplProtocol p = resolve(o.ppl, m.n_ctx_train(), m.bos_id());
  const LlamaCppWindowModel runtime(m, p);
  const eval::FilePplResult fr = score_text(o, runtime, tok, p, m.bos_id(), m.eos_id());
  JNAS_CHECK_IO(std::isfinite(fr.result.nll) && std::isfinite(fr.result.ppl),
                "llama.cpp: the perplexity of {} is not finite (nll {}): the file's weights hold a NaN or an Inf",
                m.path(), fr.result.nll);
  Json j = ppl_json(o, p, fr);
  j["runtime"] = "llama.cpp";
  j["threads"] = m.threads();
  j["model_description"] = m.description();
  return j;
}

}  // namespace

Json run_ppl(const PplOptions& o) {
  // The text is checked here, before the model loads.
  JNAS_CHECK_CONFIG(!o.run.model.empty(), "eval ppl: no model; give --model (a GGUF file with --runtime llama.cpp)");
  require_regular_file(o.text, "the text file (--text)");
  if (o.runtime == "llama.cpp") return run_ppl_llamacpp(o);
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/true);
  const auto& cfg = lm.ckpt.config;
  const int64_t bos = data::bos_id(cfg, *lm.tokenizer), eos = data::eos_id(cfg, *lm.tokenizer);
  const eval::PplProtocol p = resolve(o.ppl, cfg.max_position_embeddings, bos);
  std::unique_ptr<model::LlamaModel> teacher;
  if (!o.teacher.empty()) {
    ModelSettings tf = o.run;
    tf.model = o.teacher;
    teacher = std::move(load_model(tf, /*need_tokenizer=*/false).model);
  }
  const eval::LlamaWindowModel runtime(*lm.model, p, teacher.get());
  const eval::FilePplResult fr = score_text(o, runtime, *lm.tokenizer, p, bos, eos);
  const eval::PplResult& r = fr.result;
  if (!std::isfinite(r.nll) || !std::isfinite(r.ppl)) throw_non_finite(lm, o.run.model, "the perplexity is");
  Json j = ppl_json(o, p, fr);
  if (r.has_teacher) j["teacher"] = {{"model", o.teacher.str()}, {"kl", r.kl_teacher}, {"top1_agreement", r.top1_agreement}};
  return j;
}

}  // namespace jointnas::pipeline
