// `jointnas search`: the differentiable joint search (search/dnas.h) over a model, a search space,
// a latency table and budgets. Writes arch.json and search_log.jsonl into --out.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "search_flags.h"
#include "step_log.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/search/dnas.h"

namespace jointnas::cli {
namespace {

struct SearchFlags {
  RunFlags run;
  std::string space, table, text, out, importance, mixing = "factorized", relaxation = "gumbel";
  profile::Workload workload;
  std::string latency;  // "12.5" ms, or "0.6x" of the dense model's predicted latency
  double memory_mib = 0, params = 0;
  search::DnasOptions o;
  int64_t lora_rank = 8;
  int64_t max_tokens = 200000;
  std::string target_device;         // whose default formats the space gets (default: --device)
  std::vector<std::string> formats;  // search only these formats (bf16: architecture only)
  std::string fix_arch;              // arch.json whose structure is kept: precision only
  bool clamp_budget = false;         // a latency budget below the space's reach becomes that reach
};

void run(SearchFlags& f) {
  JNAS_CHECK_CONFIG(!f.out.empty(), "search needs --out DIR");
  model::RuntimeOptions ro = runtime_options(f.run);
  model::Checkpoint ck = model::load_checkpoint(f.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const std::string dev = !f.target_device.empty() ? f.target_device : ro.device.is_cuda() ? "cuda" : "cpu";
  // `full` is the space arch.json is written against; `space` the part of it searched here.
  const search::SearchSpace full = search::SearchSpace::from_yaml_file(f.space, cfg, dev);
  search::SearchSpace space = full;
  if (!f.fix_arch.empty()) space = search::fix_structure(full, search::arch_from_json(read_json_file(f.fix_arch), full, f.fix_arch));
  if (!f.formats.empty()) space = search::restrict_formats(space, f.formats);
  const std::vector<int64_t> rank =
      f.importance.empty() ? std::vector<int64_t>{} : ranks_from_importance(f.importance, cfg.num_hidden_layers);
  const profile::LatencyTable table = profile::LatencyTable::load(f.table);
  search::CostContext cc;
  cc.config = &cfg;
  cc.space = &space;
  cc.block_rank = rank;
  cc.table = &table;
  cc.workload = f.workload;
  cc.dtype_bytes = at::elementSize(ro.dtype);

  search::Budget budget;
  // "0.6x" is relative to the whole space's dense model, whatever part of it is searched.
  search::CostContext cc_full = cc;
  cc_full.space = &full;
  const profile::Cost dense = search::arch_cost(cc_full, search::largest_arch(full));
  if (!f.latency.empty()) budget.latency_ms = parse_latency_budget(f.latency, dense.latency_ms);
  budget.memory_bytes = f.memory_mib * 1024.0 * 1024.0;
  budget.params = f.params;
  JNAS_CHECK_CONFIG(budget.any(), "search needs a budget: --latency, --memory-mib or --params");
  JNAS_LOG_INFO("[search] dense model by the table: {:.4f} ms, {:.2f} MiB peak memory ({:.2f} MiB weights + KV); budget {}",
                dense.latency_ms, dense.peak_bytes() / 1048576.0, (dense.weight_bytes + dense.kv_cache_bytes) / 1048576.0,
                budget.to_json().dump());
  double clamped_from = 0;
  if (f.clamp_budget && budget.latency_ms > 0) {
    const double reach = search::arch_cost(cc, search::fastest_arch(cc)).latency_ms;
    if (budget.latency_ms < reach) {
      JNAS_LOG_WARN("[search] the latency budget {:.4f} ms is below the {:.4f} ms this space reaches; --clamp-budget: "
                    "searching at {:.4f} ms",
                    budget.latency_ms, reach, reach * (1 + 1e-6));
      clamped_from = budget.latency_ms;
      budget.latency_ms = reach * (1 + 1e-6);
    }
  }
  // Fails here, before loading data or building the supernet, when the space cannot meet the budget.
  search::check_budget_feasible(cc, budget);

  auto tok = load_tokenizer_for(f.run.model, cfg.vocab_size);
  JNAS_CHECK_CONFIG(tok != nullptr, "{}: no tokenizer beside the model", f.run.model);
  eval::PplProtocol p;
  const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : tok->bos_id();
  const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : tok->eos_id();
  std::vector<int64_t> stream = eval::build_stream(eval::split_documents(read_text_file(f.text), p.documents), *tok, p, bos, eos);
  if (f.max_tokens > 0 && static_cast<int64_t>(stream.size()) > f.max_tokens) stream.resize(static_cast<size_t>(f.max_tokens));
  f.o.seq_len = std::min(f.o.seq_len, cfg.max_position_embeddings);

  search::SupernetOptions so;
  so.mixing = search::parse_mixing(f.mixing);
  so.device = ro.device;
  so.dtype = ro.dtype;
  so.lora_rank = f.lora_rank;
  search::Supernet net(ck, space, rank, so, f.o.seed);
  f.o.relaxation = search::parse_relaxation(f.relaxation);

  std::error_code ec;
  std::filesystem::create_directories(f.out, ec);
  JNAS_CHECK_IO(!ec && dir_exists(f.out), "cannot create the output directory {}: {}", f.out, ec.message());
  const std::string arch_path = f.out + "/arch.json", log_path = f.out + "/search_log.jsonl";
  StepLog log(log_path);
  f.o.checkpoint.dir = f.out + "/checkpoint";
  f.o.checkpoint.interrupt = &install_interrupt_handler();
  f.o.checkpoint.on_resume = [&](int64_t step) { log.resume_at(step); };
  search::LocalProcessGroup pg;
  JNAS_LOG_INFO("[search] {} tokens, {} decisions, 10^{:.1f} architectures, {} steps", stream.size(),
                net.named_arch_parameters().size(), space.log10_num_architectures(rank), f.o.steps);
  search::DnasResult r = search::run_dnas(net, stream, cc, budget, f.o, pg, [&](const Json& rec) {
    log.write(rec);
    const int64_t s = rec["step"].get<int64_t>();
    if (s % 10 == 0 || s + 1 == f.o.steps) {
      JNAS_LOG_INFO("[search] step {}/{} tau {:.3f} kd {:.4f} E[lat] {:.4f} ms penalty {:.4f} entropy {:.3f} decided {}/{} ({:.0f} ms)",
                    s + 1, f.o.steps, rec["tau"].get<double>(), rec.value("kd", 0.0), rec.value("expected_latency_ms", 0.0),
                    rec.value("penalty", 0.0), rec["mean_entropy"].get<double>(), rec["decided"].get<int64_t>(),
                    rec["decisions"].get<int64_t>(), rec["ms"].get<double>());
    }
  });
  r.argmax = search::map_arch(space, r.argmax, full);  // identity unless a part was searched
  r.arch = search::map_arch(space, r.arch, full);
  Json aj = search::arch_json(cc_full, r, budget);
  if (!f.formats.empty()) aj["searched_formats"] = f.formats;
  if (!f.fix_arch.empty()) aj["fixed_structure_from"] = f.fix_arch;
  if (clamped_from > 0) aj["budget_clamped_from_ms"] = clamped_from;
  write_file_atomic(arch_path, aj.dump(1) + "\n");
  Json summary{{"arch", arch_path}, {"log", log_path}, {"predicted", r.predicted.to_json()},
               {"dense", dense.to_json()}, {"budget", budget.to_json()}, {"steps_run", r.steps_run},
               {"stop_reason", r.stop_reason}};
  summary["repairs"] = r.repairs;
  emit(f.run.format, summary,
       [&] {
         std::cout << fmt::format("searched {} steps (stop: {}); wrote {}\n", r.steps_run, r.stop_reason,
                                  arch_path);
         std::cout << fmt::format("  {:<28} {:>12} {:>12} {:>12}\n", "", "dense", "found", "budget");
         std::cout << fmt::format("  {:<28} {:>12.4f} {:>12.4f} {:>12}\n", "latency (ms, table)", dense.latency_ms,
                                  r.predicted.latency_ms, budget.latency_ms > 0 ? fmt::format("{:.4f}", budget.latency_ms) : "-");
         std::cout << fmt::format("  {:<28} {:>12.2f} {:>12.2f} {:>12}\n", "peak memory (MiB, table)",
                                  dense.peak_bytes() / 1048576.0, r.predicted.peak_bytes() / 1048576.0,
                                  budget.memory_bytes > 0 ? fmt::format("{:.2f}", budget.memory_bytes / 1048576.0) : "-");
         std::cout << fmt::format("  {:<28} {:>12.2f} {:>12.2f} {:>12}\n", "  of which weights + KV",
                                  (dense.weight_bytes + dense.kv_cache_bytes) / 1048576.0,
                                  (r.predicted.weight_bytes + r.predicted.kv_cache_bytes) / 1048576.0, "");
         std::cout << fmt::format("  {:<28} {:>12} {:>12} {:>12}\n", "parameters", dense.params, r.predicted.params,
                                  budget.params > 0 ? fmt::format("{:.0f}", budget.params) : "-");
         for (const auto& m : r.repairs) std::cout << "  repair: " << m << "\n";
       });
}

}  // namespace

void register_search(CLI::App& app) {
  auto f = std::make_shared<SearchFlags>();
  auto* sub = app.add_subcommand("search", "Differentiable joint search of architecture and per-layer formats under a budget");
  add_run_flags(sub, f->run);
  sub->add_option("--space", f->space, "Search space YAML (docs/search.md)")->required();
  sub->add_option("--table", f->table, "Latency table from `jointnas profile` for this space and workload")->required();
  sub->add_option("--text", f->text, "Training text (distillation data), e.g. wikitext2 train")->required();
  sub->add_option("--out", f->out, "Output directory (arch.json, search_log.jsonl)")->required();
  sub->add_option("--importance", f->importance, "importance.json of the (permuted) model: the depth order");
  add_workload_flags(sub, f->workload);
  sub->add_option("--latency", f->latency, "Latency budget: ms, or a fraction of the dense model with 'x' (0.6x)");
  sub->add_option("--memory-mib", f->memory_mib, "Memory budget, MiB: the runtime's predicted peak for the workload (weights, KV cache, activations, "
                  "RoPE tables and the table's calibrated runtime constant)");
  sub->add_option("--params", f->params, "Parameter budget");
  sub->add_option("--steps", f->o.steps, "Alternating steps (default 100)");
  sub->add_option("--train-batch", f->o.batch, "Windows per step (default 4)");
  sub->add_option("--seq-len", f->o.seq_len, "Tokens per window (default 128)");
  sub->add_option("--max-tokens", f->max_tokens, "Tokens of --text used (default 200000; 0 = all)");
  sub->add_option("--lora-rank", f->lora_rank, "LoRA rank (0: frozen weights)");
  sub->add_flag("--frozen-weights", [f](int64_t) { f->o.train_lora = false; }, "Architecture updates only");
  sub->add_option("--formats", f->formats, "Search only these formats (comma list; bf16 = architecture only)")->delimiter(',');
  sub->add_option("--fix-arch", f->fix_arch, "Keep this arch.json's structure; search precision only");
  sub->add_flag("--clamp-budget", f->clamp_budget,
               "A latency budget below what the space reaches becomes that reach (with a warning) instead of an error");
  sub->add_option("--target-device", f->target_device,
                  "cpu | cuda: the device the table was measured on, whose formats the space defaults to (default: --device)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--mixing", f->mixing, "factorized | dense_mask | loop");
  sub->add_option("--relaxation", f->relaxation, "gumbel | hard | softmax");
  sub->add_option("--tau", f->o.tau_start, "Initial Gumbel temperature (default 1)");
  sub->add_option("--tau-end", f->o.tau_end, "Final Gumbel temperature (default 0.1)");
  sub->add_option("--lr-arch", f->o.lr_arch, "Adam step of the architecture logits (default 0.05)");
  sub->add_option("--lr-lora", f->o.lr_lora, "Adam step of the LoRA adapters (default 1e-3)");
  sub->add_option("--penalty", f->o.penalty_weight, "Budget penalty weight (default 2)");
  sub->add_option("--penalty-form", f->o.penalty_form, "target (default: spend the primary budget) | hinge (only excess)");
  sub->add_option("--entropy-weight", f->o.entropy_weight, "Final weight of the entropy ramp (default 1)");
  sub->add_option("--entropy-threshold", f->o.entropy_threshold, "Per-decision freeze threshold (default 0.15)");
  sub->add_option("--stop-entropy", f->o.stop_entropy, "Mean entropy that ends the search (default 0.05)");
  sub->add_option("--warmup", f->o.warmup_steps, "LoRA-only steps first");
  sub->add_option("--kd-temperature", f->o.loss.temperature, "Distillation temperature (default 1)");
  sub->add_option("--seed", f->o.seed, "Seed (data order, Gumbel noise, LoRA init)");
  sub->add_option("--checkpoint-every", f->o.checkpoint.every,
                  "Steps between checkpoints in OUT/checkpoint (default 10); a rerun resumes from the last one");
  sub->add_option("--checkpoint-seconds", f->o.checkpoint.every_seconds,
                  "Also checkpoint when this many seconds passed since the last one (default 300; 0: steps only)");
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
