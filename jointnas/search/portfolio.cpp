#include "jointnas/search/portfolio.h"

#include <algorithm>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/quant/format.h"
#include "jointnas/search/derive.h"

namespace jointnas::search {

CandidateResult finetune_candidate(const model::Checkpoint& ckpt, const CostContext& cc, const Candidate& c,
                                   const std::vector<int64_t>& train, const HeldoutSet& heldout,
                                   const PortfolioOptions& o, const std::function<void(const Json&)>& log,
                                   const HeldoutSet* eval) {
  CandidateResult r;
  r.candidate = c;
  r.predicted = arch_cost(cc, c.arch);
  SupernetOptions so = o.supernet;
  if (o.finetune.steps == 0) so.lora_rank = 0;
  JNAS_CHECK_CONFIG(o.finetune.steps == 0 || so.lora_rank > 0, "portfolio: {} finetune steps need a LoRA rank > 0",
                    o.finetune.steps);
  Supernet net(ckpt, restrict_to(*cc.space, c.arch), cc.block_rank, so, o.finetune.seed);
  LocalProcessGroup pg;
  const ArchDist dist = net.one_hot(first_arch(net.space()));
  if (eval != nullptr) r.eval_before = eval->evaluate(net, dist);
  r.recovery = run_recovery(net, train, heldout, o.finetune, o.early, pg, log);
  r.before = r.recovery.curve.front().score;
  if (eval != nullptr) {
    r.has_eval = true;
    r.eval_after = eval->evaluate(net, dist);
  }
  return r;
}

PortfolioResult run_portfolio(const model::Checkpoint& ckpt, const CostContext& cc,
                              const std::vector<Candidate>& candidates, const std::vector<int64_t>& train,
                              const HeldoutSet& heldout, const PortfolioOptions& o,
                              const std::function<void(const Json&)>& log) {
  JNAS_CHECK_CONFIG(!candidates.empty(), "portfolio: no candidate architectures");
  const SearchSpace& s = *cc.space;
  // Distinct architectures, in order; every candidate names the one it is.
  std::vector<size_t> first_of(candidates.size());
  std::vector<size_t> distinct;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Json key = candidates[i].arch.to_json(s);
    size_t d = 0;
    while (d < distinct.size() && candidates[distinct[d]].arch.to_json(s) != key) ++d;
    if (d == distinct.size()) distinct.push_back(i);
    first_of[i] = distinct[d];
  }
  // A distinct architecture is always a finalist when any candidate that is it is one: in the
  // stories260K study at 0.524x depth only was the same model as the per-hidden derivation listed
  // before it, which the screen left out, and the model of perplexity 36.3 lost to one of 47.4.
  std::vector<bool> always(candidates.size(), false);
  for (size_t i = 0; i < candidates.size(); ++i) always[first_of[i]] = always[first_of[i]] || candidates[i].always_finalist;
  std::vector<CandidateResult> done(candidates.size());
  std::vector<bool> finalist(candidates.size(), true);
  const bool screen = o.finalists > 0 && o.screen_steps > 0 && o.finetune.steps > o.screen_steps &&
                      static_cast<int64_t>(distinct.size()) > o.finalists;
  if (screen) {
    PortfolioOptions so = o;
    so.finetune.steps = o.screen_steps;
    so.early.eval_every = 0;  // held-out KL before and after the screen's steps
    std::vector<std::pair<double, size_t>> ranked;
    for (size_t i : distinct) {
      JNAS_LOG_INFO("[portfolio] screen {}: finetuning {} steps", candidates[i].name, so.finetune.steps);
      done[i] = finetune_candidate(ckpt, cc, candidates[i], train, heldout, so, log);
      done[i].screen_kl = done[i].recovery.best.kl;
      ranked.emplace_back(done[i].screen_kl, i);
    }
    std::sort(ranked.begin(), ranked.end());
    const double within = ranked.front().first * (1 + std::max(0.0, o.kl_tie));
    for (size_t r = 0; r < ranked.size(); ++r) {
      const bool keep = static_cast<int64_t>(r) < o.finalists || ranked[r].first <= within ||
                        always[ranked[r].second];
      finalist[ranked[r].second] = keep;
      done[ranked[r].second].screened_out = !keep;
      JNAS_LOG_INFO("[portfolio] screen {}: held-out KL {:.5f} -> {}", candidates[ranked[r].second].name,
                    ranked[r].first, keep ? "finalist" : "left out");
    }
  }
  for (size_t i : distinct) {
    if (!finalist[i]) continue;
    const double screen_kl = done[i].screen_kl;
    JNAS_LOG_INFO("[portfolio] candidate {}: finetuning {} steps", candidates[i].name, o.finetune.steps);
    done[i] = finetune_candidate(ckpt, cc, candidates[i], train, heldout, o, log);
    done[i].screen_kl = screen_kl;
    const CandidateResult& r = done[i];
    JNAS_LOG_INFO("[portfolio] candidate {}: held-out KL {:.5f} -> {:.5f} (best step {}), predicted {:.4f} ms",
                  candidates[i].name, r.before.kl, r.recovery.best.kl, r.recovery.best_step, r.predicted.latency_ms);
  }
  PortfolioResult p;
  for (size_t i = 0; i < candidates.size(); ++i) {
    CandidateResult r = done[first_of[i]];
    if (first_of[i] != i) {
      r.candidate.name = candidates[i].name;
      r.same_as = candidates[first_of[i]].name;
    }
    p.candidates.push_back(r);
  }
  p.best = pick_winner(p.candidates, s, cc.block_rank, o.kl_tie);
  return p;
}

int64_t quantized_slots(const SearchSpace& space, const std::vector<int64_t>& block_rank, const Arch& a) {
  int64_t n = 0;
  const int64_t kept = space.depth[static_cast<size_t>(a.depth)];
  for (size_t l = 0; l < space.layers.size(); ++l) {
    if (!block_kept(block_rank, static_cast<int64_t>(l), kept)) continue;
    for (int k = 0; k < kNumFormatSlots; ++k) {
      n += space.layers[l].formats[k][static_cast<size_t>(a.formats[l][k])] != "bf16" ? 1 : 0;
    }
  }
  return n;
}

size_t pick_winner(const std::vector<CandidateResult>& cands, const SearchSpace& space,
                   const std::vector<int64_t>& block_rank, double kl_tie) {
  JNAS_CHECK_CONFIG(!cands.empty(), "portfolio: no candidates to pick from");
  size_t least = cands.size();
  for (size_t i = 0; i < cands.size(); ++i) {
    if (cands[i].screened_out) continue;
    if (least == cands.size() || cands[i].recovery.best.kl < cands[least].recovery.best.kl) least = i;
  }
  JNAS_CHECK_CONFIG(least < cands.size(), "portfolio: every candidate was screened out");
  const double within = cands[least].recovery.best.kl * (1 + std::max(0.0, kl_tie));
  size_t best = least;
  for (size_t i = 0; i < cands.size(); ++i) {
    const CandidateResult& c = cands[i];
    if (c.screened_out || c.recovery.best.kl > within) continue;
    const int64_t q = quantized_slots(space, block_rank, c.candidate.arch);
    const int64_t qb = quantized_slots(space, block_rank, cands[best].candidate.arch);
    if (q < qb || (q == qb && c.recovery.best.kl < cands[best].recovery.best.kl)) best = i;
  }
  for (size_t i = 0; i < cands.size(); ++i) {
    if (!cands[i].screened_out && cands[i].candidate.is_limit && cands[i].recovery.best.kl <= within) return i;
  }
  return best;
}

Json PortfolioResult::to_json(const SearchSpace& space) const {
  Json cs = Json::array();
  double runner_up = -1;
  const CandidateResult& w = candidates.at(best);
  for (const CandidateResult& r : candidates) {
    Json j{{"name", r.candidate.name},
           {"architecture", r.candidate.arch.to_json(space)},
           {"predicted", r.predicted.to_json()},
           {"heldout_kl_before", r.before.kl},
           {"heldout_kl", r.recovery.best.kl},
           {"heldout_nll", r.recovery.best.nll},
           {"finetune_steps", r.recovery.finetune.steps},
           {"best_step", r.recovery.best_step},
           {"curve", r.recovery.to_json()["curve"]}};
    if (!r.same_as.empty()) j["same_as"] = r.same_as;
    if (r.screen_kl >= 0) j["screen_kl"] = r.screen_kl;
    if (r.screened_out) j["screened_out"] = true;
    cs.push_back(j);
    if (r.screened_out) continue;
    const bool same_arch = r.candidate.arch.to_json(space) == w.candidate.arch.to_json(space);
    if (!same_arch && (runner_up < 0 || r.recovery.best.kl < runner_up)) runner_up = r.recovery.best.kl;
  }
  Json out{{"winner", w.candidate.name},
           {"margin_kl", runner_up < 0 ? 0.0 : runner_up - w.recovery.best.kl},
           {"candidates", cs}};
  size_t least = best;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].screened_out && candidates[i].recovery.best.kl < candidates[least].recovery.best.kl) least = i;
  }
  if (candidates[least].candidate.arch.to_json(space) != w.candidate.arch.to_json(space)) {
    out["tie"] = Json{{"least_kl", candidates[least].candidate.name}, {"kl", candidates[least].recovery.best.kl},
                      {"decided_by", "fewest quantized linears within the tie"}};
  }
  return out;
}

Arch depth_only_arch(const CostContext& cc, const Budget& b, const std::string& format) {
  const SearchSpace& s = *cc.space;
  Arch a = largest_arch(s);
  if (!format.empty()) {
    for (size_t l = 0; l < s.layers.size(); ++l) {
      for (int k = 0; k < kNumFormatSlots; ++k) {
        const auto& offered = s.layers[l].formats[k];
        const auto it = std::find(offered.begin(), offered.end(), format);
        if (it != offered.end()) a.formats[l][k] = it - offered.begin();
      }
    }
  }
  for (int64_t d = static_cast<int64_t>(s.depth.size()) - 1; d >= 0; --d) {
    a.depth = d;
    if (budget_excess(arch_cost(cc, a), b) == 0.0) return a;
  }
  throw ConfigError(fmt::format("depth only: even {} blocks in {} miss the budget {} (predicted {})", s.depth.front(),
                                format.empty() ? "bf16" : format, b.to_json().dump(), arch_cost(cc, a).to_json().dump()),
                    "lower the space's smallest depth, or raise the budget");
}

std::vector<std::string> uniform_formats(const SearchSpace& s) {
  std::vector<std::string> out;
  if (s.layers.empty()) return out;
  for (const std::string& f : s.layers.front().formats[0]) {
    bool everywhere = f != "bf16";
    for (const LayerChoices& l : s.layers) {
      for (int k = 0; k < kNumFormatSlots; ++k) {
        everywhere = everywhere && std::find(l.formats[k].begin(), l.formats[k].end(), f) != l.formats[k].end();
      }
    }
    if (everywhere) out.push_back(f);
  }
  return out;
}

Arch grow_arch(const CostContext& cc, const Budget& b, const ScoreTable& scores, const Arch& a) {
  if (!b.any() || budget_excess(arch_cost(cc, a), b) > 0.0) return a;
  const SearchSpace& s = *cc.space;
  auto at_least = [](const std::vector<int64_t>& v, int64_t i) {
    std::vector<int64_t> r;
    for (int64_t x : v) {
      if (x >= v[static_cast<size_t>(i)]) r.push_back(x);
    }
    return r;
  };
  SearchSpace sub = s;
  sub.hidden = at_least(s.hidden, a.hidden);
  sub.depth = at_least(s.depth, a.depth);
  const int64_t depth = s.depth[static_cast<size_t>(a.depth)];
  for (size_t l = 0; l < s.layers.size(); ++l) {
    if (!block_kept(cc.block_rank, static_cast<int64_t>(l), depth)) continue;
    const LayerChoices& lc = s.layers[l];
    LayerChoices& g = sub.layers[l];
    g.kv_groups = at_least(lc.kv_groups, a.kv_groups[l]);
    g.head_dims = at_least(lc.head_dims, a.head_dims[l]);
    g.intermediate = at_least(lc.intermediate, a.intermediate[l]);
    for (int k = 0; k < kNumFormatSlots; ++k) {
      const int bits = quant::find_format(lc.formats[k][static_cast<size_t>(a.formats[l][k])]).weight_bits;
      g.formats[k].clear();
      for (const std::string& f : lc.formats[k]) {
        if (quant::find_format(f).weight_bits >= bits) g.formats[k].push_back(f);
      }
    }
  }
  CostContext sc = cc;
  sc.space = &sub;
  return map_arch(sub, derive(sc, b, map_scores(scores, s, sub)).arch, s);
}

Arch arch_only_arch(const CostContext& cc, const Budget& b, const ScoreTable& scores) {
  const SearchSpace& s = *cc.space;
  // Each slot keeps the format largest_arch gives it (bf16 where offered).
  const Arch big = largest_arch(s);
  SearchSpace sub = s;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    for (int k = 0; k < kNumFormatSlots; ++k) {
      sub.layers[l].formats[k] = {s.layers[l].formats[k][static_cast<size_t>(big.formats[l][k])]};
    }
  }
  CostContext sc = cc;
  sc.space = &sub;
  const Derivation d = derive(sc, b, map_scores(scores, s, sub));
  return map_arch(sub, d.arch, s);
}

}  // namespace jointnas::search
