// The `importance` stage; see importance_stage.h.
#include "jointnas/pipeline/importance_stage.h"

#include <filesystem>

#include "jointnas/compress/importance.h"
#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/log.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/export/hf_directory.h"
#include "jointnas/pipeline/model_loading.h"

namespace jointnas::pipeline {
namespace {
namespace fs = std::filesystem;

// The dtype the source stores its weights in (the embedding's), so that the permuted copy is
// bit-identical up to the order of its rows and columns.
std::string storage_dtype(const model::Checkpoint& ck) {
  const auto it = ck.tensors.find("model.embed_tokens.weight");
  if (it == ck.tensors.end()) return "float32";
  switch (it->second.scalar_type()) {
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return "float32";
  }
}

}  // namespace

Json run_importance(const ImportanceOptions& o) {
  check_output_separate(o.out, "--out", {{o.run.model, "--model"}, {o.calib, "--calib"}});
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/true);
  const model::LlamaModel& m = *lm.model;
  const auto& cfg = lm.ckpt.config;
  compress::check_permutable(lm.ckpt);  // before the calibration, not after

  // Calibration windows from the same document stream as `eval ppl` and `quantize --calib`.
  const auto stream = data::load_token_stream(o.calib, *lm.tokenizer, cfg, data::kCalibrationMaxTokens);
  const int64_t len = std::min(o.importance.seq_len, cfg.max_position_embeddings);
  const at::Tensor calib = compress::sample_windows(stream, o.importance.windows, len, static_cast<uint64_t>(o.seed));
  JNAS_LOG_INFO("[importance] calibration: {} windows x {} tokens from {} ({} tokens)", o.importance.windows, len,
                o.calib.str(), stream.size());

  compress::ImportanceOptions opts;
  opts.batch = o.importance.batch;
  auto progress = [&](int64_t done, int64_t total) { JNAS_LOG_INFO("[importance] windows {}/{}", done, total); };
  compress::Importance imp = compress::compute_importance(m, calib, opts, progress);
  imp.source = o.run.model;
  imp.calibration.file = o.calib;
  imp.calibration.seed = static_cast<uint64_t>(o.seed);

  // The permuted model, in the source's storage dtype, with its tokenizer; then the rankings.
  const model::Checkpoint permuted = compress::permute_checkpoint(lm.ckpt, imp);
  model::save_hf_directory(permuted, o.out, storage_dtype(lm.ckpt));
  const std::string tok = exporting::copy_tokenizer(lm.ckpt, o.run.model, o.out);
  const std::string ij_path = (fs::path(o.out.str()) / "importance.json").string();
  write_file_atomic(ij_path, imp.to_json().dump(2) + "\n");
  return Json{{"out", o.out.str()},
              {"tokenizer", tok},
              {"importance", ij_path},
              {"block_influence", imp.block_influence},
              {"block_rank", imp.block_rank},
              {"tokens", imp.calibration.tokens}};
}

}  // namespace jointnas::pipeline
