// The `search` stage; see search_stage.h.
#include "jointnas/pipeline/search_stage.h"

#include <filesystem>
#include <optional>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <fmt/format.h>

#include "jointnas/compress/importance.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/pipeline/step_log.h"
#include "jointnas/search/arch_io.h"
#include "jointnas/search/derive.h"

namespace jointnas::pipeline {
namespace {

// Logs every tenth step of the search (the whole record goes to search_log.jsonl).
void log_step(const Json& rec, int64_t steps) {
  const int64_t s = rec["step"].get<int64_t>();
  if (s % 10 != 0 && s + 1 != steps) return;
  JNAS_LOG_INFO("[search] step {}/{} tau {:.3f} kd {:.4f} E[lat] {:.4f} ms penalty {:.4f} entropy {:.3f} decided {}/{} ({:.0f} ms)",
                s + 1, steps, rec["tau"].get<double>(), rec.value("kd", 0.0), rec.value("expected_latency_ms", 0.0),
                rec.value("penalty", 0.0), rec["mean_entropy"].get<double>(), rec["decided"].get<int64_t>(),
                rec["decisions"].get<int64_t>(), rec["ms"].get<double>());
}

// A latency budget below what the space reaches becomes that reach (--clamp-budget); returns the
// budget it replaced (0: none).
double clamp_latency(const search::CostContext& cc, search::Budget& budget) {
  const double reach = search::arch_cost(cc, search::fastest_arch(cc)).latency_ms;
  if (budget.latency_ms <= 0 || budget.latency_ms >= reach) return 0;
  JNAS_LOG_WARN("[search] the latency budget {:.4f} ms is below the {:.4f} ms this space reaches; --clamp-budget: "
                "searching at {:.4f} ms",
                budget.latency_ms, reach, reach * (1 + 1e-6));
  const double was = budget.latency_ms;
  budget.latency_ms = reach * (1 + 1e-6);
  return was;
}

// What the measured fit holds the selection's candidates to (none when it is off, there is no
// latency budget or the target cannot be run here). The candidates are timed as the bench stage
// will time the found model: on the target, in the run's dtype there (another device's default).
std::optional<MeasuredBudget> measured_budget(const SearchOptions& o, const model::LlamaConfig& cfg,
                                              const std::string& dev, const search::Budget& budget, double dense_ms,
                                              model::RuntimeOptions& target) {
  if (o.search.selection.measured_fit <= 0 || budget.latency_ms <= 0) return std::nullopt;
  if (dev == "llama.cpp") {
    // Not built for llama.cpp: `jointnas run`'s closed loop holds the exported GGUF to the budget
    // as llama.cpp measures it (docs/llamacpp.md).
    JNAS_LOG_WARN("[search] target llama.cpp: the measured fit is not built for it; the table is trusted here");
    return std::nullopt;
  }
  if (dev == "cuda" && !at::hasCUDA()) {
    JNAS_LOG_WARN("[search] no CUDA device here: the measured fit is skipped and the table trusted");
    return std::nullopt;
  }
  ModelSettings t = o.run;
  if (dev != o.run.device) t.dtype.clear();
  t.device = dev;
  target = runtime_options(t);
  const std::string& lat = o.budget.latency;
  MeasuredBudget mb{!lat.empty() && lat.back() == 'x' ? budget.latency_ms / dense_ms : 0.0,
                    profile::Blueprint{cfg, model::dense_layer_specs(cfg)}, std::nullopt};
  if (!o.latency_of.empty()) {
    JNAS_CHECK_CONFIG(mb.fraction > 0, "--latency-of needs a relative --latency (such as 0.8x): the share of the "
                                       "original the model of {} measures",
                      o.latency_of.str());
    const Json aj = read_json_file(o.latency_of);
    JNAS_CHECK_IO(has_format_tag(aj, "jointnas-arch") && aj.contains("config") && aj["config"].is_object(),
                  "{}: not a jointnas arch.json with a deployable 'config'", o.latency_of.str());
    const model::LlamaConfig lc = model::LlamaConfig::from_json(aj["config"], o.latency_of.str() + " (config)");
    JNAS_CHECK_IO(static_cast<int64_t>(lc.layer_specs.size()) == cfg.num_hidden_layers &&
                      lc.vocab_size == cfg.vocab_size && lc.hidden_size <= cfg.hidden_size,
                  "{}: an architecture of another model ({} layers, vocabulary {}; this one: {}, {})",
                  o.latency_of.str(), lc.layer_specs.size(), lc.vocab_size, cfg.num_hidden_layers, cfg.vocab_size);
    mb.limit_model = profile::Blueprint{lc, lc.layer_specs};
  }
  return mb;
}

// The architecture of `--latency-of` in the searched space (a matched point's baseline), to be a
// candidate of the portfolio: the space holds it, so the joint method can always return a model
// as good as that baseline at its latency (issue 22). None when the space cannot express it (a
// format or width it lacks, another depth order), with the reason.
std::optional<search::Arch> limit_arch(const SearchOptions& o, const model::LlamaConfig& cfg,
                                       const search::SearchSpace& space, const std::vector<int64_t>& rank) {
  if (o.latency_of.empty()) return std::nullopt;
  try {
    return search::arch_in_space(read_json_file(o.latency_of), cfg, space, rank, o.latency_of.str());
  } catch (const Error& e) {
    JNAS_LOG_WARN("[search] {} is not an architecture of the searched space ({}); it is not a candidate",
                  o.latency_of.str(), e.what());
    return std::nullopt;
  }
}

// The budget the table searches at. Under a measured budget, the table's reach is not the
// target's: on the H100 the table predicts ref-17m's one-block models 1.4x slower than they
// measure, so a budget below the table's fastest architecture can still be met. The search then
// starts at that architecture and the fit measures it (a point the target cannot meet either is
// kept as the fastest measured, with a warning). A budget below half the table's reach still
// fails (check_budget_feasible): no table this project measured was off by 2x. Returns the
// table's budget and the latency budget it replaced (0: none).
std::pair<search::Budget, double> table_budget_for(const search::CostContext& cc, const search::Budget& budget,
                                                   bool measured) {
  search::Budget table_budget = budget;
  double raised_from = 0;
  if (!measured || budget.latency_ms <= 0) return {table_budget, raised_from};
  const double reach = search::arch_cost(cc, search::fastest_arch(cc)).latency_ms;
  if (budget.latency_ms < reach && 2 * budget.latency_ms >= reach) {
    raised_from = budget.latency_ms;
    table_budget.latency_ms = reach * (1 + 1e-6);
    JNAS_LOG_WARN("[search] the latency budget {:.4f} ms is below the {:.4f} ms the table predicts for this "
                  "space's fastest architecture; searching the table at that, and the measured fit decides",
                  budget.latency_ms, reach);
  }
  return {table_budget, raised_from};
}

// What a relative budget ("0.5x") is of: the original as measured where the calibration measured
// it (the llama.cpp target's dense f16 model), else the table's prediction of the dense model.
double relative_reference_ms(const profile::LatencyTable& table, const profile::Workload& w, double dense_ms) {
  const profile::LatencyTable::Calibration* cal = table.calibration_for(w);
  if (cal == nullptr || !(cal->reference_ms > 0)) return dense_ms;
  JNAS_LOG_INFO("[search] relative budgets are of the original's measured {:.4f} ms (the table predicts {:.4f} ms)",
                cal->reference_ms, dense_ms);
  return cal->reference_ms;
}

}  // namespace

search::Budget resolve_budget(const BudgetSettings& b, double dense_latency_ms) {
  search::Budget budget;
  if (!b.latency.empty()) budget.latency_ms = parse_latency_budget(b.latency, dense_latency_ms);
  budget.memory_bytes = b.memory_mib * 1024.0 * 1024.0;
  budget.params = b.params;
  JNAS_CHECK_CONFIG(budget.any(), "search needs a budget: --latency, --memory-mib or --params (all > 0)");
  return budget;
}

Json run_search(const SearchOptions& o, const std::atomic<bool>* interrupt) {
  const model::RuntimeOptions ro = runtime_options(o.run);
  const model::Checkpoint ck = model::load_checkpoint(o.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const std::string dev = target_device_name(o.target_device, ro);
  // `full` is the space arch.json is written against; `space` the part of it searched here.
  const search::SearchSpace full = search::SearchSpace::from_yaml_file(o.space, cfg, dev);
  search::SearchSpace space = full;
  if (!o.fix_arch.empty()) {
    space = search::fix_structure(full, search::arch_from_json(read_json_file(o.fix_arch), full, o.fix_arch));
  }
  if (!o.formats.empty()) space = search::restrict_formats(space, o.formats);
  const std::vector<int64_t> rank =
      o.importance.empty() ? std::vector<int64_t>{} : compress::load_block_rank(o.importance, cfg.num_hidden_layers);
  const profile::LatencyTable table = profile::LatencyTable::load(o.table);
  search::CostContext cc{&cfg, &space, rank, &table, o.workload, static_cast<int64_t>(at::elementSize(ro.dtype))};
  // "0.6x" is relative to the whole space's dense model, whatever part of it is searched.
  search::CostContext cc_full = cc;
  cc_full.space = &full;
  const profile::Cost dense = search::arch_cost(cc_full, search::largest_arch(full));
  search::Budget budget = resolve_budget(o.budget, relative_reference_ms(table, o.workload, dense.latency_ms));
  JNAS_LOG_INFO("[search] dense model by the table: {:.4f} ms, {:.2f} MiB peak memory ({:.2f} MiB weights + KV); budget {}",
                dense.latency_ms, dense.peak_bytes() / 1048576.0, (dense.weight_bytes + dense.kv_cache_bytes) / 1048576.0,
                budget.to_json().dump());
  const double clamped_from = o.clamp_budget ? clamp_latency(cc, budget) : 0;
  const SelectionSettings& sel = o.search.selection;
  model::RuntimeOptions target;  // the measured fit holds the selection to the budget as the target measures it
  const std::optional<MeasuredBudget> mb = clamped_from == 0 && sel.select != Selection::kDnas
                                               ? measured_budget(o, cfg, dev, budget, dense.latency_ms, target)
                                               : std::nullopt;
  const auto [table_budget, raised_from] = table_budget_for(cc, budget, mb.has_value());
  // Fails here, before loading data or building the supernet, when the space cannot meet the budget.
  search::check_budget_feasible(cc, table_budget);

  const auto tok = load_tokenizer_for(o.run.model, cfg.vocab_size);
  const std::vector<int64_t> stream = data::load_token_stream(o.text, *tok, cfg, o.search.max_tokens);
  search::DnasOptions d = o.search.dnas;
  d.seq_len = std::min(d.seq_len, cfg.max_position_embeddings);
  d.seed = static_cast<uint64_t>(o.seed);
  d.train_lora = !o.frozen_weights;
  search::SupernetOptions so;
  so.mixing = o.search.mixing;
  so.device = ro.device;
  so.dtype = ro.dtype;
  so.lora_rank = o.search.lora_rank;
  // The selection holds out the tail of the training text; `dnas` trains on all of it, as before.
  const int64_t held_len = std::min(sel.heldout_seq_len, cfg.max_position_embeddings);
  const search::TokenSplit split = sel.select == Selection::kDnas
                                       ? search::TokenSplit{stream, {}}
                                       : search::split_heldout(stream, sel.heldout_windows, held_len, d.batch);

  const std::string out = o.out;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  JNAS_CHECK_IO(!ec && dir_exists(out), "cannot create the output directory {}: {}", out, ec.message());
  const std::string arch_path = out + "/arch.json", log_path = out + "/search_log.jsonl";
  search::DnasResult r;
  const bool run_dnas = sel.select != Selection::kDerived && d.steps > 0;
  if (run_dnas) {
    search::Supernet net(ck, space, rank, so, d.seed);
    StepLog log(log_path);
    d.checkpoint.dir = out + "/checkpoint";
    d.checkpoint.interrupt = interrupt;
    d.checkpoint.on_resume = [&](int64_t step) { log.resume_at(step); };
    search::LocalProcessGroup pg;
    JNAS_LOG_INFO("[search] {} tokens, {} decisions, 10^{:.1f} architectures, {} steps", split.train.size(),
                  net.named_arch_parameters().size(), space.log10_num_architectures(rank), d.steps);
    r = search::run_dnas(net, split.train, cc, table_budget, d, pg, [&](const Json& rec) {
      log.write(rec);
      log_step(rec, d.steps);
    });
  }
  JNAS_CHECK_CONFIG(run_dnas || sel.select != Selection::kDnas, "search: select 'dnas' needs steps > 0");
  Json selection;
  if (sel.select != Selection::kDnas) {
    if (interrupt != nullptr && interrupt->load()) throw Interrupted("search interrupted before the selection; rerun to resume");
    const search::HeldoutSet held(split.heldout, held_len, 0, 4);
    const SelectionInputs in{
        .ckpt = &ck, .cc = &cc, .budget = table_budget, .train = &split.train, .heldout = &held, .supernet = so,
        .batch = d.batch, .seq_len = d.seq_len, .seed = d.seed,
        .scores_path = o.scores.empty() ? out + "/scores.json" : o.scores.str(),
        .scores_identity = Json{{"model", o.run.model.str()}, {"text", o.text.str()}, {"max_tokens", o.search.max_tokens}},
        .dnas = run_dnas ? &r : nullptr, .measured = mb ? &*mb : nullptr, .target = target,
        .matched = mb ? limit_arch(o, cfg, space, rank) : std::nullopt};
    const Selected s = select_architecture(sel, in);
    r.argmax = run_dnas ? r.argmax : s.arch;
    r.arch = s.arch;
    r.predicted = s.predicted;
    r.stop_reason = run_dnas ? r.stop_reason : "derived";
    selection = s.record;
    // Relative to this directory, so that two runs with equal inputs write equal arch.json files.
    selection["scores"] = std::filesystem::path(in.scores_path).lexically_relative(out).string();
  }
  r.argmax = search::map_arch(space, r.argmax, full);  // identity unless a part was searched
  r.arch = search::map_arch(space, r.arch, full);
  Json aj = search::arch_json(cc_full, r, budget);
  if (!o.formats.empty()) aj["searched_formats"] = o.formats;
  if (!o.fix_arch.empty()) aj["fixed_structure_from"] = o.fix_arch.str();
  if (clamped_from > 0) aj["budget_clamped_from_ms"] = clamped_from;
  if (raised_from > 0) aj["table_budget_raised_to_ms"] = table_budget.latency_ms;
  if (!selection.is_null()) aj["selection"] = selection;
  const auto [use, binding] = search::budget_use(r.predicted, budget);
  aj["budget_use"] = Json{{"binding", binding}, {"use", use}};
  write_file_atomic(arch_path, aj.dump(1) + "\n");
  Json summary{{"arch", arch_path}, {"log", log_path}, {"predicted", r.predicted.to_json()},
               {"dense", dense.to_json()}, {"budget", budget.to_json()}, {"steps_run", r.steps_run},
               {"stop_reason", r.stop_reason}};
  summary["repairs"] = r.repairs;
  summary["budget_use"] = aj["budget_use"];
  if (!selection.is_null()) summary["selected"] = selection.value("winner", "");
  return summary;
}

}  // namespace jointnas::pipeline
