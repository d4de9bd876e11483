// The `eval ppl` stage; see ppl_stage.h.
#include "jointnas/pipeline/ppl_stage.h"

#include <cmath>

#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/pipeline/model_loading.h"

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

Json run_ppl(const PplOptions& o) {
  const std::string text = read_text_file(o.text);
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/true);
  const auto& cfg = lm.ckpt.config;
  const eval::PplProtocol p = resolve(o.ppl, cfg.max_position_embeddings, data::bos_id(cfg, *lm.tokenizer));
  std::unique_ptr<model::LlamaModel> teacher;
  if (!o.teacher.empty()) {
    ModelSettings tf = o.run;
    tf.model = o.teacher;
    teacher = std::move(load_model(tf, /*need_tokenizer=*/false).model);
  }
  const auto docs = eval::split_documents(text, p.documents);
  const auto stream =
      eval::build_stream(docs, *lm.tokenizer, p, data::bos_id(cfg, *lm.tokenizer), data::eos_id(cfg, *lm.tokenizer));
  JNAS_LOG_INFO("[eval ppl] {}: {} documents, {} tokens", o.text.str(), docs.size(), stream.size());
  int64_t last_pct = -1;
  auto progress = [&](int64_t done, int64_t total) {
    const int64_t pct = 100 * done / total;
    if (pct / 10 != last_pct / 10) {
      JNAS_LOG_INFO("[eval ppl] window {}/{} ({}%)", done, total, pct);
      last_pct = pct;
    }
  };
  eval::PplResult r = eval::perplexity(*lm.model, stream, p, progress, teacher.get());
  if (!std::isfinite(r.nll) || !std::isfinite(r.ppl)) throw_non_finite(lm, o.run.model, "the perplexity is");
  r.documents = static_cast<int64_t>(docs.size());
  Json j{{"nll", r.nll},
         {"ppl", r.ppl},
         {"tokens", r.tokens},
         {"windows", r.windows},
         {"stream_tokens", r.stream_tokens},
         {"documents", r.documents},
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
  if (r.has_teacher) j["teacher"] = {{"model", o.teacher.str()}, {"kl", r.kl_teacher}, {"top1_agreement", r.top1_agreement}};
  return j;
}

}  // namespace jointnas::pipeline
