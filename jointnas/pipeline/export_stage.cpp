// `jointnas export`; see export_stage.h.
#include "jointnas/pipeline/export_stage.h"

#include <filesystem>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/export/gguf.h"
#include "jointnas/export/hf_export.h"
#include "jointnas/pipeline/model_loading.h"

namespace jointnas::pipeline {
namespace fs = std::filesystem;

std::string resolve_export_model(const std::string& path) {
  if (file_exists((fs::path(path) / "model" / "config.json").string()) &&
      !file_exists((fs::path(path) / "config.json").string())) {
    return (fs::path(path) / "model").string();
  }
  return path;
}

Json run_export(const ExportOptions& o) {
  ExportOptions e = o;
  e.run.model = opt::Path{resolve_export_model(o.run.model.str())};
  // Issue 26's rule: the output never replaces (or sits inside) an input.
  check_output_separate(e.out, "--out", {{e.run.model, "--model"}, {o.run.model, "--model"}});
  // The export reads the runtime's own weights (every format as the runtime holds it) in fp32.
  e.run.device = "cpu";
  e.run.dtype = "float32";
  LoadedModel lm = load_model(e.run, /*need_tokenizer=*/false);
  if (o.to == "hf") {
    const exporting::HfExportResult h =
        exporting::write_hf_model(*lm.model, lm.ckpt, e.run.model.str(), o.hf_dtype, e.out.str());
    JNAS_LOG_INFO("[export] {}: {}", e.out.str(), h.architecture);
    return Json{{"out", e.out.str()},
                {"to", o.to},
                {"model", e.run.model.str()},
                {"architecture", h.architecture},
                {"config", h.config}};
  }
  const exporting::GgufVocab vocab = exporting::read_vocab(lm.ckpt, e.run.model.str());
  exporting::GgufExportOptions go;
  go.embedding_type = o.embedding_type;
  go.name = o.name.empty() ? fs::path(e.run.model.str()).filename().string() : o.name;
  go.provenance = Json{{"source_model", e.run.model.str()}, {"tokenizer", vocab.source}};
  const exporting::GgufExportResult r = exporting::write_gguf(*lm.model, vocab, go, e.out.str());
  Json j = exporting::gguf_report_json(r);
  j["out"] = e.out.str();
  j["to"] = o.to;
  j["model"] = e.run.model.str();
  JNAS_LOG_INFO(
      "[export] {}: {} blocks as '{}', {} tensors ({} converted, max relative error {:.3g})",
      e.out.str(), r.kept_layers.size(), r.architecture, r.tensors.size(),
      j["tensors_converted"].get<int64_t>(), j["max_rel_error"].get<double>());
  return j;
}

}  // namespace jointnas::pipeline
