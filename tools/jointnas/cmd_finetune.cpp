// `jointnas finetune`: the architecture of arch.json, cut from the (permuted) model, recovered by
// LoRA + fake-quant distillation from the original, LoRA merged, quantized for real, and written
// as an HF directory a user can keep (model.safetensors with packed formats, config.json with
// per-layer specs, tokenizer, jointnas_export.json with provenance and the quantization manifest).
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "step_log.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/quant/format.h"
#include "jointnas/search/dnas.h"
#include "jointnas/search/finetune.h"

namespace jointnas::cli {
namespace {

struct FinetuneFlags {
  RunFlags run;
  std::string space, arch, text, out;
  search::FinetuneOptions o;
  int64_t lora_rank = 8;
  int64_t max_tokens = 200000;
  std::string target_device;  // whose default formats the space gets (default: --device)
};

// The depth order the architecture was searched with (arch.json's block_rank; identity if empty).
std::vector<int64_t> block_rank_of(const Json& arch, int64_t layers) {
  if (arch.contains("block_rank") && arch["block_rank"].is_array() && !arch["block_rank"].empty()) {
    std::vector<int64_t> r;
    for (const auto& v : arch["block_rank"]) {
      JNAS_CHECK_IO(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < layers,
                    "arch.json: block_rank entries must be in [0, {})", layers);
      r.push_back(v.get<int64_t>());
    }
    JNAS_CHECK_IO(static_cast<int64_t>(r.size()) == layers, "arch.json: block_rank lists {} blocks, the model has {}",
                  r.size(), layers);
    return r;
  }
  return {};
}

void run(FinetuneFlags& f) {
  model::RuntimeOptions ro = runtime_options(f.run);
  model::Checkpoint ck = model::load_checkpoint(f.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const std::string dev = !f.target_device.empty() ? f.target_device : ro.device.is_cuda() ? "cuda" : "cpu";
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(f.space, cfg, dev);
  const Json aj = read_json_file(f.arch);
  const search::Arch arch = search::arch_from_json(aj, space, f.arch);
  const std::vector<int64_t> rank = block_rank_of(aj, cfg.num_hidden_layers);
  const search::SearchSpace one = search::restrict_to(space, arch);

  auto tok = load_tokenizer_for(f.run.model, cfg.vocab_size);
  JNAS_CHECK_CONFIG(tok != nullptr, "{}: no tokenizer beside the model", f.run.model);
  std::vector<int64_t> stream;
  if (f.o.steps > 0) {
    eval::PplProtocol p;
    const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : tok->bos_id();
    const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : tok->eos_id();
    JNAS_CHECK_CONFIG(!f.text.empty(), "finetune with --steps {} needs --text", f.o.steps);
    stream = eval::build_stream(eval::split_documents(read_text_file(f.text), p.documents), *tok, p, bos, eos);
    if (f.max_tokens > 0 && static_cast<int64_t>(stream.size()) > f.max_tokens) stream.resize(static_cast<size_t>(f.max_tokens));
  }
  f.o.seq_len = std::min(f.o.seq_len, cfg.max_position_embeddings);
  search::SupernetOptions so;
  so.mixing = search::Mixing::kFactorized;
  so.device = ro.device;
  so.dtype = ro.dtype;
  so.lora_rank = f.o.steps > 0 ? f.lora_rank : 0;
  search::Supernet net(ck, one, rank, so, f.o.seed);

  std::error_code ec;
  std::filesystem::create_directories(f.out, ec);
  JNAS_CHECK_IO(!ec && dir_exists(f.out), "cannot create the output directory {}: {}", f.out, ec.message());
  // Checkpoints go beside the export and are removed once it is complete.
  StepLog log(f.out + "/finetune_log.jsonl");
  const std::string ckpt_dir = f.out + "/checkpoint";
  f.o.checkpoint.dir = ckpt_dir;
  f.o.checkpoint.interrupt = &install_interrupt_handler();
  f.o.checkpoint.on_resume = [&](int64_t step) { log.resume_at(step); };
  search::LocalProcessGroup pg;
  const search::FinetuneResult r = search::run_finetune(net, stream, f.o, pg, [&](const Json& rec) {
    log.write(rec);
    const int64_t s = rec["step"].get<int64_t>();
    if (s % 10 == 0 || s + 1 == f.o.steps) {
      JNAS_LOG_INFO("[finetune] step {}/{} kd {:.4f} top-1 {:.3f} ({:.0f} ms)", s + 1, f.o.steps, rec["kd"].get<double>(),
                    rec["top1_agreement"].get<double>(), rec["ms"].get<double>());
    }
  });

  // Export: merged, quantized on the finetuned grid, packed.
  model::Checkpoint out = net.extract_checkpoint(search::first_arch(one));
  const std::string dtype = ro.dtype == at::kBFloat16 ? "bfloat16" : ro.dtype == at::kHalf ? "float16" : "float32";
  model::save_hf_directory(out, f.out, dtype);
  const std::string tok_file = copy_tokenizer(ck, f.run.model, f.out);
  Json manifest = Json::array();
  for (size_t l = 0; l < out.config.layer_specs.size(); ++l) {
    const model::LayerSpec& sp = out.config.layer_specs[l];
    if (sp.skip) continue;
    Json e{{"layer", l}};
    for (int s = 0; s < 4; ++s) e[search::kSlotNames[s]] = sp.format_of(s);
    manifest.push_back(e);
  }
  Json prov{{"format", "jointnas-export"},
            {"version", 1},
            {"source_model", f.run.model},
            {"arch", aj.value("architecture", Json::object())},
            {"predicted", aj.value("predicted", Json::object())},
            {"budget", aj.value("budget", Json::object())},
            {"workload", aj.value("workload", Json::object())},
            {"finetune", {{"steps", r.steps}, {"kd_first", r.first_kd}, {"kd_last", r.last_kd}, {"text", f.text},
                          {"lora_rank", so.lora_rank}, {"lr", f.o.lr}, {"seed", f.o.seed}}},
            {"quantization", {{"method", "rtn"}, {"layers", manifest}}},
            {"tokenizer", tok_file}};
  write_file_atomic(f.out + "/jointnas_export.json", prov.dump(1) + "\n");
  if (!remove_tree(ckpt_dir)) JNAS_LOG_WARN("[finetune] could not remove {}", ckpt_dir);
  emit(f.run.format, Json{{"out", f.out}, {"steps", r.steps}, {"kd_first", r.first_kd}, {"kd_last", r.last_kd}}, [&] {
    std::cout << fmt::format("finetuned {} steps (KD {:.4f} -> {:.4f}); exported {}\n", r.steps, r.first_kd, r.last_kd, f.out);
  });
}

}  // namespace

void register_finetune(CLI::App& app) {
  auto f = std::make_shared<FinetuneFlags>();
  auto* sub = app.add_subcommand("finetune", "Recover a found architecture by LoRA + fake-quant distillation and export it");
  add_run_flags(sub, f->run);
  sub->add_option("--space", f->space, "The search space YAML the architecture came from")->required();
  sub->add_option("--arch", f->arch, "arch.json from `jointnas search`")->required();
  sub->add_option("--text", f->text, "Training text (distillation data)");
  sub->add_option("--out", f->out, "Export directory")->required();
  sub->add_option("--target-device", f->target_device, "cpu | cuda: as given to `jointnas search` (default: --device)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--steps", f->o.steps, "Distillation steps (0: export without finetuning)");
  sub->add_option("--train-batch", f->o.batch, "Windows per step (default 4)");
  sub->add_option("--seq-len", f->o.seq_len, "Tokens per window (default 128)");
  sub->add_option("--max-tokens", f->max_tokens, "Tokens of --text used (default 200000; 0 = all)");
  sub->add_option("--lora-rank", f->lora_rank, "LoRA rank (default 8)");
  sub->add_option("--lr", f->o.lr, "Adam step (default 1e-3)");
  sub->add_option("--kd-temperature", f->o.loss.temperature, "Distillation temperature (default 1)");
  sub->add_option("--seed", f->o.seed, "Seed");
  sub->add_option("--checkpoint-every", f->o.checkpoint.every,
                  "Steps between checkpoints in OUT/checkpoint (default 10); a rerun resumes from the last one");
  sub->add_option("--checkpoint-seconds", f->o.checkpoint.every_seconds,
                  "Also checkpoint when this many seconds passed since the last one (default 300; 0: steps only)");
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
