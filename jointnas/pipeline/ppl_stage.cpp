// The `eval ppl` stage; see ppl_stage.h.
#include "jointnas/pipeline/ppl_stage.h"

#include <cmath>

#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/eval/text_stream.h"
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
  // The text is streamed (eval/text_stream.h): read and tokenized a block at a time, scored as it
  // comes, and read only until max_windows windows are had. Checked here, before the model loads.
  require_regular_file(o.text, "the text file (--text)");
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/true);
  const auto& cfg = lm.ckpt.config;
  const eval::PplProtocol p = resolve(o.ppl, cfg.max_position_embeddings, data::bos_id(cfg, *lm.tokenizer));
  std::unique_ptr<model::LlamaModel> teacher;
  if (!o.teacher.empty()) {
    ModelSettings tf = o.run;
    tf.model = o.teacher;
    teacher = std::move(load_model(tf, /*need_tokenizer=*/false).model);
  }
  int64_t last_pct = -1;
  auto progress = [&](int64_t done, double read) {
    const auto pct = static_cast<int64_t>(100 * read);
    if (pct / 10 != last_pct / 10) {
      JNAS_LOG_INFO("[eval ppl] {} windows scored, {}% of {} read", done, pct, o.text.str());
      last_pct = pct;
    }
  };
  const eval::FilePplResult fr =
      eval::perplexity_of_file(*lm.model, o.text, *lm.tokenizer, p, data::bos_id(cfg, *lm.tokenizer),
                               data::eos_id(cfg, *lm.tokenizer), progress, teacher.get());
  const eval::PplResult& r = fr.result;
  JNAS_LOG_INFO("[eval ppl] {}: {} documents, {} tokens{}", o.text.str(), r.documents, r.stream_tokens,
                fr.complete ? "" : " read (enough for --max-windows; the rest of the file was not read)");
  if (!std::isfinite(r.nll) || !std::isfinite(r.ppl)) throw_non_finite(lm, o.run.model, "the perplexity is");
  Json j{{"nll", r.nll},
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
  if (r.has_teacher) j["teacher"] = {{"model", o.teacher.str()}, {"kl", r.kl_teacher}, {"top1_agreement", r.top1_agreement}};
  return j;
}

}  // namespace jointnas::pipeline
