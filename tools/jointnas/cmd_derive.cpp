// `jointnas derive` (issue 22, experiments; the lead folds it into the redesigned CLI): measures the
// per-decision sensitivity scores on held-out windows of the training text (or reads them), derives
// the best architecture under the budgets exactly (search/derive.h), optionally runs the candidate
// portfolio (search/portfolio.h) and writes arch.json; `--validate N` instead finetunes N random
// architectures and reports the rank correlation of the scores with their measured held-out KL.
#include <filesystem>
#include <iostream>
#include <random>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "search_flags.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/search/derive.h"
#include "jointnas/search/portfolio.h"
#include "jointnas/search/recovered_scores.h"
#include "jointnas/search/sensitivity.h"

namespace jointnas::cli {
namespace {

struct DeriveFlags {
  RunFlags run;
  std::string space, table, importance, text, eval_text, scores, out, latency, target_device, dnas_arch;
  std::string validate_out, block_drops, recovered;
  int64_t recover_samples = 3;
  std::vector<double> band;  // validation: only architectures predicted within [lo, hi] x the dense latency
  profile::Workload workload;
  double memory_mib = 0, params = 0, relax = 1.5;
  int64_t heldout_windows = 32, seq_len = 256, max_tokens = 0, eval_windows = 64, validate = 0;
  bool one_row = false, portfolio = false;  // one_row: per-layer scores at the largest hidden size only
  search::FinetuneOptions ft;
  search::EarlyStopping es;
  int64_t lora_rank = 8;
  uint64_t seed = 0;
};

std::vector<int64_t> token_stream(const std::string& path, const model::Checkpoint& ck, const std::string& model_path,
                                  int64_t max_tokens) {
  auto tok = load_tokenizer_for(model_path, ck.config.vocab_size);
  JNAS_CHECK_CONFIG(tok != nullptr, "{}: no tokenizer beside the model", model_path);
  eval::PplProtocol p;
  const int64_t bos = ck.config.bos_token_id >= 0 ? ck.config.bos_token_id : tok->bos_id();
  const int64_t eos = !ck.config.eos_token_ids.empty() ? ck.config.eos_token_ids[0] : tok->eos_id();
  std::vector<int64_t> s = eval::build_stream(eval::split_documents(read_text_file(path), p.documents), *tok, p, bos, eos);
  if (max_tokens > 0 && static_cast<int64_t>(s.size()) > max_tokens) s.resize(static_cast<size_t>(max_tokens));
  return s;
}

void validate(DeriveFlags& f, const model::Checkpoint& ck, const search::CostContext& cc,
              const std::vector<std::pair<std::string, const search::ScoreTable*>>& tables, const std::vector<int64_t>& train,
              const search::HeldoutSet& held, const search::PortfolioOptions& po) {
  JNAS_CHECK_CONFIG(!f.eval_text.empty(), "--validate needs --eval-text (the held-out evaluation text)");
  const search::HeldoutSet eval(token_stream(f.eval_text, ck, f.run.model, 0), f.seq_len, f.eval_windows, 4);
  std::mt19937_64 rng(f.seed);
  std::vector<std::vector<double>> predicted(tables.size());
  std::vector<double> before, after;
  Json points = Json::array();
  const double dense_ms = search::arch_cost(cc, search::largest_arch(*cc.space)).latency_ms;
  JNAS_CHECK_CONFIG(f.band.empty() || (f.band.size() == 2 && f.band[0] < f.band[1]),
                    "--validate-band: expected two fractions LO,HI with LO < HI");
  auto in_band = [&](const search::Arch& a) {
    if (f.band.empty()) return true;
    const double r = search::arch_cost(cc, a).latency_ms / dense_ms;
    return r >= f.band[0] && r <= f.band[1];
  };
  for (int64_t i = 0; i < f.validate; ++i) {
    search::Arch a = search::random_arch(*cc.space, rng);
    for (int tries = 0; !in_band(a); ++tries) {
      JNAS_CHECK_CONFIG(tries < 100000, "--validate-band: no random architecture in 100000 lies in the band");
      a = search::random_arch(*cc.space, rng);
    }
    const search::CandidateResult r =
        search::finetune_candidate(ck, cc, {fmt::format("random{}", i), a}, train, held, po, {}, &eval);
    Json score = Json::object();
    for (size_t k = 0; k < tables.size(); ++k) {
      predicted[k].push_back(tables[k].second->score(*cc.space, a, cc.block_rank));
      score[tables[k].first] = predicted[k].back();
    }
    before.push_back(r.eval_before.kl);
    after.push_back(r.eval_after.kl);
    points.push_back(Json{{"architecture", a.to_json(*cc.space)}, {"score", score},
                          {"eval_kl_before", before.back()}, {"eval_kl_after", after.back()},
                          {"eval_nll_after", r.eval_after.nll}, {"heldout_kl_after", r.recovery.best.kl},
                          {"finetune_steps", r.recovery.finetune.steps}, {"best_step", r.recovery.best_step},
                          {"predicted", r.predicted.to_json()}});
    JNAS_LOG_INFO("[derive] validation {}/{}: score {}, eval KL {:.5f} -> {:.5f}", i + 1, f.validate, score.dump(),
                  before.back(), after.back());
  }
  Json rho = Json::object();
  for (size_t k = 0; k < tables.size(); ++k) {
    rho[tables[k].first] = Json{{"spearman_after_finetune", search::spearman(predicted[k], after)},
                                {"spearman_before_finetune", search::spearman(predicted[k], before)}};
  }
  const Json j{{"spearman", rho}, {"finetune_steps", f.ft.steps}, {"seed", f.seed}, {"band", f.band}, {"points", points}};
  if (!f.validate_out.empty()) write_file_atomic(f.validate_out, j.dump(1) + "\n");
  emit(f.run.format, rho, [&] {
    for (const auto& [name, v] : rho.items()) {
      std::cout << fmt::format("{} random architectures, {} scores: Spearman(score, eval KL) {:.3f} after finetune, {:.3f} before\n",
                               f.validate, name, v["spearman_after_finetune"].get<double>(),
                               v["spearman_before_finetune"].get<double>());
    }
  });
}

void run(DeriveFlags& f) {
  const model::RuntimeOptions ro = runtime_options(f.run);
  const model::Checkpoint ck = model::load_checkpoint(f.run.model);
  const model::LlamaConfig& cfg = ck.config;
  const std::string dev = !f.target_device.empty() ? f.target_device : ro.device.is_cuda() ? "cuda" : "cpu";
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(f.space, cfg, dev);
  const profile::LatencyTable table = profile::LatencyTable::load(f.table);
  search::CostContext cc;
  cc.config = &cfg;
  cc.space = &space;
  cc.block_rank = f.importance.empty() ? std::vector<int64_t>{} : ranks_from_importance(f.importance, cfg.num_hidden_layers);
  cc.table = &table;
  cc.workload = f.workload;
  cc.dtype_bytes = at::elementSize(ro.dtype);
  const profile::Cost dense = search::arch_cost(cc, search::largest_arch(space));
  search::Budget budget;
  if (!f.latency.empty()) budget.latency_ms = parse_latency_budget(f.latency, dense.latency_ms);
  budget.memory_bytes = f.memory_mib * 1024.0 * 1024.0;
  budget.params = f.params;
  JNAS_CHECK_CONFIG(budget.any() || f.validate > 0 || !f.block_drops.empty() || !f.recovered.empty(),
                    "derive needs a budget (--latency, --memory-mib, --params), --validate or --block-drops");

  f.seq_len = std::min(f.seq_len, cfg.max_position_embeddings);
  f.ft.seq_len = std::min(f.ft.seq_len, cfg.max_position_embeddings);
  const search::TokenSplit split =
      search::split_heldout(token_stream(f.text, ck, f.run.model, f.max_tokens), f.heldout_windows, f.seq_len, f.ft.batch);
  const search::HeldoutSet held(split.heldout, f.seq_len, 0, 4);
  search::SupernetOptions so;
  so.device = ro.device;
  so.dtype = ro.dtype;

  search::ScoreTable scores;
  if (!f.scores.empty() && file_exists(f.scores)) {
    scores = search::ScoreTable::from_json(read_json_file(f.scores), f.scores);
    scores.check(space, f.scores);
    JNAS_LOG_INFO("[derive] scores from {}", f.scores);
  } else {
    search::SensitivityOptions o;
    o.per_hidden = !f.one_row;
    const search::Supernet net(ck, space, cc.block_rank, so, f.seed);
    JNAS_LOG_INFO("[derive] measuring {} sensitivities on {} held-out windows of {}", search::sensitivity_evaluations(space, o),
                  held.windows(), held.seq_len());
    scores = search::measure_sensitivity(net, held, o, [](int64_t done, int64_t total) {
      if (done % 20 == 0 || done == total) JNAS_LOG_INFO("[derive] sensitivity {}/{}", done, total);
    });
    if (!f.scores.empty()) write_file_atomic(f.scores, scores.to_json().dump(1) + "\n");
  }
  if (!f.block_drops.empty()) {
    const std::vector<double> drops = search::measure_block_drops(ck, space, held, so);
    const std::vector<int64_t> rank = search::rank_by_drop(drops);
    std::vector<int64_t> by_rank(rank.size());  // importance.json's convention: the layer at rank r
    for (size_t l = 0; l < rank.size(); ++l) by_rank[static_cast<size_t>(rank[l])] = static_cast<int64_t>(l);
    write_file_atomic(f.block_drops, Json{{"block_drop_kl", drops}, {"block_rank", by_rank}}.dump(1) + "\n");
    JNAS_LOG_INFO("[derive] block drops written to {}", f.block_drops);
  }
  search::PortfolioOptions po;
  po.finetune = f.ft;
  po.finetune.seed = f.seed;
  po.early = f.es;
  po.supernet = so;
  po.supernet.lora_rank = f.lora_rank;
  // Recovered scores (search/recovered_scores.h): read when the file exists, else measured there.
  search::ScoreTable recovered;
  if (!f.recovered.empty()) {
    if (file_exists(f.recovered)) {
      recovered = search::ScoreTable::from_json(read_json_file(f.recovered), f.recovered);
      recovered.check(space, f.recovered);
    } else {
      const search::RecoveredScores rs = search::recover_scores(
          ck, cc, scores, split.train, held, po, f.recover_samples, f.seed + 1,
          [](int64_t done, int64_t total) { JNAS_LOG_INFO("[derive] recovered scores {}/{}", done, total); });
      write_file_atomic(f.recovered, rs.to_json(space).dump(1) + "\n");
      JNAS_LOG_INFO("[derive] recovered scores written to {} (layer weight {:.4f})", f.recovered, rs.layer_weight);
      recovered = rs.table;
    }
  }
  std::vector<std::pair<std::string, const search::ScoreTable*>> tables = {{"sensitivity", &scores}};
  if (!f.recovered.empty()) tables.push_back({"recovered", &recovered});
  const search::ScoreTable& used = f.recovered.empty() ? scores : recovered;
  if (f.validate > 0) validate(f, ck, cc, tables, split.train, held, po);
  if (!budget.any()) return;

  search::DeriveOptions dopt;
  dopt.relax = f.relax;
  const search::Derivation d = search::derive(cc, budget, used, dopt);
  search::DnasResult r;
  r.argmax = d.arch;
  r.arch = d.arch;
  r.predicted = d.predicted;
  r.stop_reason = "derived";
  Json extra{{"derivation", d.to_json(space)}, {"scores", f.recovered.empty() ? f.scores : f.recovered}};
  if (f.portfolio) {
    std::vector<search::Candidate> cands = {{f.recovered.empty() ? "derived" : "derived_recovered", d.arch}};
    // Both score tables propose: each wins at some budgets (docs/search.md).
    if (!f.recovered.empty()) cands.push_back({"derived_sensitivity", search::derive(cc, budget, scores, dopt).arch});
    try {
      cands.push_back({"depth_only", search::depth_only_arch(cc, budget)});
    } catch (const ConfigError& e) {
      JNAS_LOG_WARN("[derive] no depth-only candidate: {}", e.what());
    }
    cands.push_back({"arch_only", search::arch_only_arch(cc, budget, used)});
    if (!f.dnas_arch.empty()) cands.push_back({"dnas", search::arch_from_json(read_json_file(f.dnas_arch), space, f.dnas_arch)});
    const search::PortfolioResult p = search::run_portfolio(ck, cc, cands, split.train, held, po, {});
    r.arch = p.candidates[p.best].candidate.arch;
    r.predicted = p.candidates[p.best].predicted;
    extra["portfolio"] = p.to_json(space);
  }
  Json aj = search::arch_json(cc, r, budget);
  for (auto& [k, v] : extra.items()) aj[k] = v;
  if (!f.out.empty()) write_file_atomic(f.out, aj.dump(1) + "\n");
  emit(f.run.format, Json{{"arch", f.out}, {"derivation", extra["derivation"]}, {"portfolio", extra.value("portfolio", Json())}},
       [&] {
         std::cout << fmt::format("derived: score {:.5f}, {:.4f} ms predicted ({:.1f} % of the {} budget), dense {:.4f} ms{}\n",
                                  d.score, d.predicted.latency_ms, 100 * d.budget_use, d.binding, dense.latency_ms,
                                  d.gap_bound > 0 ? fmt::format(", gap bound {:.3g}", d.gap_bound) : "");
         if (d.has_next) {
           std::cout << fmt::format("  next larger: score {:.5f}, {:.4f} ms ({:.1f} % of the budget)\n", d.next_score,
                                    d.next_predicted.latency_ms, 100 * d.next_budget_use);
         }
         if (extra.contains("portfolio")) {
           for (const auto& c : extra["portfolio"]["candidates"]) {
             std::cout << fmt::format("  {:<12} held-out KL {:.5f} -> {:.5f}  {:.4f} ms\n", c["name"].get<std::string>(),
                                      c["heldout_kl_before"].get<double>(), c["heldout_kl"].get<double>(),
                                      c["predicted"]["latency_ms"].get<double>());
           }
           std::cout << "  winner: " << extra["portfolio"]["winner"].get<std::string>() << "\n";
         }
       });
}

}  // namespace

void register_derive(CLI::App& app) {
  auto f = std::make_shared<DeriveFlags>();
  auto* sub = app.add_subcommand("derive", "Exact architecture under a budget from measured sensitivity scores (issue 22)");
  add_run_flags(sub, f->run);
  sub->add_option("--space", f->space, "Search space YAML")->required();
  sub->add_option("--table", f->table, "Latency table of the target device and workload")->required();
  sub->add_option("--importance", f->importance, "importance.json of the (permuted) model: the depth order");
  sub->add_option("--text", f->text, "Training text; its last --heldout-windows windows score and select")->required();
  sub->add_option("--scores", f->scores, "Score table JSON: read when it exists, else measured and written there");
  sub->add_option("--out", f->out, "arch.json to write");
  add_workload_flags(sub, f->workload);
  sub->add_option("--latency", f->latency, "Latency budget: ms, or a fraction of the dense model (0.6x)");
  sub->add_option("--memory-mib", f->memory_mib, "Memory budget (predicted peak), MiB");
  sub->add_option("--params", f->params, "Parameter budget");
  sub->add_option("--relax", f->relax, "Name the next larger architecture up to this multiple of the budget (default 1.5)");
  sub->add_option("--heldout-windows", f->heldout_windows, "Held-out windows at the end of --text (default 32)");
  sub->add_option("--seq-len", f->seq_len, "Held-out window length (default 256)");
  sub->add_option("--max-tokens", f->max_tokens, "Tokens of --text used (0 = all)");
  sub->add_flag("--no-per-hidden", f->one_row, "Measure per-layer sensitivities at the largest hidden size only");
  sub->add_flag("--portfolio", f->portfolio, "Finetune the derived, depth-only, architecture-only (and --dnas-arch) candidates; keep the best");
  sub->add_option("--dnas-arch", f->dnas_arch, "arch.json of `jointnas search`: a portfolio candidate");
  sub->add_option("--finetune-steps", f->ft.steps, "Finetune steps per candidate (default 100)");
  sub->add_option("--train-batch", f->ft.batch, "Finetune windows per step (default 4)");
  sub->add_option("--train-seq-len", f->ft.seq_len, "Finetune window length (default 128)");
  sub->add_option("--lr", f->ft.lr, "Finetune Adam step (default 1e-3)");
  sub->add_option("--lora-rank", f->lora_rank, "LoRA rank (default 8)");
  sub->add_option("--eval-every", f->es.eval_every, "Held-out evaluation every N finetune steps (0: at the end only)");
  sub->add_option("--patience", f->es.patience, "Evaluations without improvement before stopping (default 3)");
  sub->add_option("--block-drops", f->block_drops, "Measure the KL of dropping each block alone; write it and a depth order here");
  sub->add_option("--recovered", f->recovered,
                  "Recovered score table (search/recovered_scores.h): read when it exists, else measured (finetunes) and "
                  "written there; the derivation then uses it");
  sub->add_option("--recover-samples", f->recover_samples, "Random architectures per hidden size that fit the layer weight (default 3)");
  sub->add_option("--validate", f->validate, "Finetune N random architectures; Spearman of score vs eval KL");
  sub->add_option("--validate-band", f->band, "LO,HI: validate only architectures predicted at LO..HI x the dense latency")
      ->delimiter(',');
  sub->add_option("--eval-text", f->eval_text, "Evaluation text of --validate");
  sub->add_option("--eval-windows", f->eval_windows, "Evaluation windows of --validate (default 64)");
  sub->add_option("--validate-out", f->validate_out, "JSON with every validation point");
  sub->add_option("--target-device", f->target_device, "cpu | cuda: whose formats the space defaults to (default: --device)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--seed", f->seed, "Seed (validation samples, LoRA init, data order)");
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
