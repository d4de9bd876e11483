// The `finetune` stage; see finetune_stage.h.
#include "jointnas/pipeline/finetune_stage.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/export/hf_directory.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/pipeline/step_log.h"
#include "jointnas/search/arch_io.h"
#include "jointnas/search/heldout.h"
#include "jointnas/search/recovery.h"

namespace jointnas::pipeline {

Json run_finetune_stage(const FinetuneStageOptions& o, const std::atomic<bool>* interrupt) {
  check_output_separate(o.out, "--out", {{o.run.model, "--model"}, {o.space, "--space"}, {o.arch, "--arch"}, {o.text, "--text"}});
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::Checkpoint ck = model::load_checkpoint(o.run.model);
  const model::LlamaConfig& cfg = ck.config;
  // The architecture is arch.json's layer specs: what the search (or rule) wrote is what is trained.
  const Json aj = read_json_file(o.arch);
  const search::SearchSpace one = search::space_from_arch_json(aj, cfg, o.arch);
  const std::vector<int64_t> rank = search::block_rank_from_arch_json(aj, cfg.num_hidden_layers, o.arch);
  if (!o.space.empty()) {
    // The space it was searched in must hold it (a mismatched pair of files is a user error).
    const search::SearchSpace full = search::SearchSpace::from_yaml_file(
        o.space, cfg, target_device_name(o.target_device, ro));
    search::map_arch(one, search::first_arch(one), full);
  }
  search::FinetuneOptions t = o.finetune.train;
  t.seed = static_cast<uint64_t>(o.seed);
  t.seq_len = std::min(t.seq_len, cfg.max_position_embeddings);
  std::vector<int64_t> stream;
  if (t.steps > 0) {
    JNAS_CHECK_CONFIG(!o.text.empty(), "finetune with --steps {} needs --text", t.steps);
    const auto tok = load_tokenizer_for(o.run.model, cfg.vocab_size);
    stream = data::load_token_stream(o.text, *tok, cfg, o.finetune.max_tokens);
  }
  search::SupernetOptions so;
  so.mixing = search::Mixing::kFactorized;
  so.device = ro.device;
  so.dtype = ro.dtype;
  so.lora_rank = t.steps > 0 ? o.finetune.lora_rank : 0;
  search::Supernet net(ck, one, rank, so, t.seed);

  const std::string out = o.out;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  JNAS_CHECK_IO(!ec && dir_exists(out), "cannot create the output directory {}: {}", out, ec.message());
  // Checkpoints go beside the export and are removed once it is complete.
  StepLog log(out + "/finetune_log.jsonl");
  const std::string ckpt_dir = out + "/checkpoint";
  t.checkpoint.dir = ckpt_dir;
  t.checkpoint.interrupt = interrupt;
  t.checkpoint.on_resume = [&](int64_t step) { log.resume_at(step); };
  search::LocalProcessGroup pg;
  auto on_record = [&](const Json& rec) {
    log.write(rec);
    if (rec.contains("heldout_step")) {
      JNAS_LOG_INFO("[finetune] held-out KL at step {}: {:.5f} (best: step {})", rec["heldout_step"].get<int64_t>(),
                    rec["heldout_kl"].get<double>(), rec["best_step"].get<int64_t>());
      return;
    }
    const int64_t s = rec["step"].get<int64_t>();
    if (s % 10 == 0 || s + 1 == t.steps) {
      JNAS_LOG_INFO("[finetune] step {}/{} kd {:.4f} top-1 {:.3f} ({:.0f} ms)", s + 1, t.steps, rec["kd"].get<double>(),
                    rec["top1_agreement"].get<double>(), rec["ms"].get<double>());
    }
  };
  search::FinetuneResult r;
  Json recovery;
  if (t.steps > 0 && o.finetune.eval_every > 0) {
    // The tail of the training text is held out; the best held-out evaluation's adapters are exported.
    const int64_t held_len = std::min(o.finetune.heldout_seq_len, cfg.max_position_embeddings);
    const search::TokenSplit split = search::split_heldout(stream, o.finetune.heldout_windows, held_len, t.batch);
    const search::HeldoutSet held(split.heldout, held_len, 0, 4);
    search::EarlyStopping es;
    es.eval_every = o.finetune.eval_every;
    es.patience = o.finetune.patience;
    const search::RecoveryResult rr = search::run_recovery(net, split.train, held, t, es, pg, on_record);
    r = rr.finetune;
    recovery = rr.to_json();
  } else {
    r = search::run_finetune(net, stream, t, pg, on_record);
  }

  // Export: merged, quantized on the finetuned grid, packed.
  const model::Checkpoint found = net.extract_checkpoint(search::first_arch(one));
  exporting::Provenance p;
  p.source_model = o.run.model;
  p.arch = aj;
  p.finetune = {{"steps", r.steps},      {"kd_first", r.first_kd}, {"kd_last", r.last_kd}, {"text", o.text.str()},
                {"lora_rank", so.lora_rank}, {"lr", t.lr},          {"seed", t.seed}};
  if (!recovery.is_null()) p.finetune["best_step"] = recovery["best_step"], p.finetune["heldout_best"] = recovery["best"];
  exporting::write_hf_export(found, dtype_name(ro.dtype), ck, p, out);
  if (!remove_tree(ckpt_dir)) JNAS_LOG_WARN("[finetune] could not remove {}", ckpt_dir);
  Json res{{"out", out}, {"steps", r.steps}, {"kd_first", r.first_kd}, {"kd_last", r.last_kd}};
  if (!recovery.is_null()) res["recovery"] = recovery;  // the held-out curve and the exported (best) step
  return res;
}

}  // namespace jointnas::pipeline
