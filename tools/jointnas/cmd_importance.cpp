// `jointnas importance`: a model + calibration text -> the permuted model (an HF directory that
// computes the same function, every width prefix being the most important part) plus
// importance.json (rankings, scores, block influence). docs/importance.md.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/compress/importance.h"
#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"

namespace jointnas::cli {
namespace {
namespace fs = std::filesystem;

struct ImportanceFlags {
  RunFlags run;
  std::string calib;
  int64_t windows = 32;
  int64_t seq_len = 256;
  uint64_t seed = 0;
  int64_t batch = 8;
  std::string out;
};

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

void run(ImportanceFlags& f) {
  JNAS_CHECK_CONFIG(f.windows > 0 && f.seq_len > 1 && f.batch > 0,
                    "--windows, --batch must be > 0 and --seq-len > 1");
  LoadedModel lm = load_model(f.run, /*need_tokenizer=*/true);
  const model::LlamaModel& m = *lm.model;
  const auto& cfg = lm.ckpt.config;
  compress::check_permutable(lm.ckpt);  // before the calibration, not after

  // Calibration windows from the same document stream as `eval ppl` and `quantize --calib`.
  eval::PplProtocol p;
  const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : lm.tokenizer->bos_id();
  const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : lm.tokenizer->eos_id();
  const auto stream = eval::build_stream(eval::split_documents(read_text_file(f.calib), p.documents),
                                         *lm.tokenizer, p, bos, eos);
  const int64_t len = std::min(f.seq_len, cfg.max_position_embeddings);
  const at::Tensor calib = compress::sample_windows(stream, f.windows, len, f.seed);
  JNAS_LOG_INFO("[importance] calibration: {} windows x {} tokens from {} ({} tokens)", f.windows,
                len, f.calib, stream.size());

  compress::ImportanceOptions opts;
  opts.batch = f.batch;
  auto progress = [&](int64_t done, int64_t total) {
    JNAS_LOG_INFO("[importance] windows {}/{}", done, total);
  };
  compress::Importance imp = compress::compute_importance(m, calib, opts, progress);
  imp.source = f.run.model;
  imp.calibration.file = f.calib;
  imp.calibration.seed = f.seed;

  // The permuted model, in the source's storage dtype, with its tokenizer; then the rankings.
  const model::Checkpoint permuted = compress::permute_checkpoint(lm.ckpt, imp);
  model::save_hf_directory(permuted, f.out, storage_dtype(lm.ckpt));
  const std::string tok = copy_tokenizer(lm.ckpt, f.run.model, f.out);
  const Json ij = imp.to_json();
  write_file_atomic((fs::path(f.out) / "importance.json").string(), ij.dump(2) + "\n");

  Json j{{"out", f.out},
         {"tokenizer", tok},
         {"importance", (fs::path(f.out) / "importance.json").string()},
         {"block_influence", imp.block_influence},
         {"block_rank", imp.block_rank}};
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("wrote {} (permuted model) and importance.json from {} tokens\n",
                             f.out, imp.calibration.tokens);
    std::cout << "  block  influence  rank\n";
    std::vector<int64_t> rank_of(imp.block_rank.size());
    for (size_t r = 0; r < imp.block_rank.size(); ++r) {
      rank_of[static_cast<size_t>(imp.block_rank[r])] = static_cast<int64_t>(r);
    }
    for (size_t l = 0; l < imp.block_influence.size(); ++l) {
      std::cout << fmt::format("  {:>5}  {:>9.5f}  {:>4}\n", l, imp.block_influence[l], rank_of[l]);
    }
  });
}

}  // namespace

void register_importance(CLI::App& app) {
  auto f = std::make_shared<ImportanceFlags>();
  auto* sub = app.add_subcommand(
      "importance",
      "Rank channels, KV groups, v dims, neurons and blocks on calibration text; write the "
      "function-preserving permuted model (most important first) and importance.json");
  add_run_flags(sub, f->run);
  sub->add_option("--calib", f->calib, "Calibration text file (e.g. wikitext2 train)")->required();
  sub->add_option("--windows", f->windows, "Calibration windows")->capture_default_str();
  sub->add_option("--seq-len", f->seq_len, "Tokens per calibration window")->capture_default_str();
  sub->add_option("--seed", f->seed, "Seed of the window sampler")->capture_default_str();
  sub->add_option("--batch", f->batch, "Windows per forward pass")->capture_default_str();
  sub->add_option("-o,--out", f->out, "Output HF directory (permuted model + importance.json)")
      ->required();
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
