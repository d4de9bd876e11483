#include "jointnas/search/dnas.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/expected_cost.h"
#include "jointnas/search/adam.h"
#include "jointnas/search/cost.h"

namespace jointnas::search {
namespace {

ArchDist to_cpu_double(const ArchDist& d) {
  auto c = [](const at::Tensor& t) { return t.to(at::kCPU).to(at::kDouble); };
  ArchDist o;
  o.hidden = c(d.hidden);
  o.depth = c(d.depth);
  for (size_t l = 0; l < d.kv_groups.size(); ++l) {
    o.kv_groups.push_back(c(d.kv_groups[l]));
    o.head_dims.push_back(c(d.head_dims[l]));
    o.intermediate.push_back(c(d.intermediate[l]));
    std::array<at::Tensor, kNumFormatSlots> f;
    for (int k = 0; k < kNumFormatSlots; ++k) f[k] = c(d.formats[l][k]);
    o.formats.push_back(f);
  }
  return o;
}

double normalised_entropy(const at::Tensor& logits) {
  const at::Tensor p = at::softmax(logits.detach().to(at::kCPU).to(at::kDouble), 0);
  const double h = -(p * at::log(p.clamp_min(1e-300))).sum().item<double>();
  return h / std::log(static_cast<double>(logits.numel()));
}

std::string value_name(const SearchSpace& s, const std::string& decision, int64_t choice) {
  // The chosen value, for the repair log.
  if (decision == "arch_hidden") return std::to_string(s.hidden[choice]);
  if (decision == "arch_depth") return std::to_string(s.depth[choice]);
  const size_t dot = decision.find('.', 7);
  const size_t l = std::stoul(decision.substr(7, dot - 7));
  const std::string what = decision.substr(dot + 1);
  const LayerChoices& lc = s.layers[l];
  if (what == "arch_kv_groups") return std::to_string(lc.kv_groups[choice]);
  if (what == "arch_head_dim") return std::to_string(lc.head_dims[choice]);
  if (what == "arch_intermediate") return std::to_string(lc.intermediate[choice]);
  for (int k = 0; k < kNumFormatSlots; ++k) {
    if (what == std::string("arch_format_") + kSlotNames[k]) return lc.formats[k][choice];
  }
  return std::to_string(choice);
}

double budgeted(const profile::Cost& c, int which) {
  switch (which) {
    case 0: return c.latency_ms;
    case 1: return static_cast<double>(c.peak_bytes());
    default: return static_cast<double>(c.params);
  }
}
constexpr const char* kBudgetNames[] = {"latency", "memory (predicted peak)", "parameters"};
std::string budget_value(int which, double v) {
  switch (which) {
    case 0: return fmt::format("{:.4f} ms", v);
    case 1: return fmt::format("{:.2f} MiB", v / (1 << 20));
    default: return fmt::format("{:.0f}", v);
  }
}

}  // namespace

Json Budget::to_json() const {
  return Json{{"latency_ms", latency_ms}, {"memory_bytes", memory_bytes}, {"params", params}};
}

Budget Budget::from_json(const Json& j, const std::string& src) {
  Budget b;
  b.latency_ms = get_number(j, "latency_ms", src).value_or(0.0);
  b.memory_bytes = get_number(j, "memory_bytes", src).value_or(0.0);
  b.params = get_number(j, "params", src).value_or(0.0);
  JNAS_CHECK_CONFIG(b.latency_ms >= 0 && b.memory_bytes >= 0 && b.params >= 0 && std::isfinite(b.latency_ms) &&
                        std::isfinite(b.memory_bytes) && std::isfinite(b.params),
                    "{}: budgets must be finite and >= 0", src);
  return b;
}

profile::Cost arch_cost(const CostContext& cc, const Arch& a) {
  auto [cfg, specs] = arch_specs(*cc.config, *cc.space, a, cc.block_rank);
  return profile::predict(cfg, specs, *cc.table, cc.workload, cc.dtype_bytes);
}

double budget_excess(const profile::Cost& c, const Budget& b) {
  const double limits[3] = {b.latency_ms, b.memory_bytes, b.params};
  double e = 0;
  for (int i = 0; i < 3; ++i) {
    if (limits[i] > 0) e += std::max(0.0, budgeted(c, i) / limits[i] - 1.0);
  }
  return e;
}

std::vector<Decision> decisions(const SearchSpace& s, Arch& a) {
  std::vector<Decision> out;
  auto add = [&](std::string name, size_t n, int64_t* idx) {
    if (n > 1) out.push_back({std::move(name), static_cast<int64_t>(n), idx});
  };
  add("arch_hidden", s.hidden.size(), &a.hidden);
  add("arch_depth", s.depth.size(), &a.depth);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    const std::string p = fmt::format("layers.{}.", l);
    add(p + "arch_kv_groups", lc.kv_groups.size(), &a.kv_groups[l]);
    add(p + "arch_head_dim", lc.head_dims.size(), &a.head_dims[l]);
    add(p + "arch_intermediate", lc.intermediate.size(), &a.intermediate[l]);
    for (int k = 0; k < kNumFormatSlots; ++k) {
      add(p + "arch_format_" + kSlotNames[k], lc.formats[k].size(), &a.formats[l][k]);
    }
  }
  return out;
}

namespace {
// Coordinate descent on one budgeted quantity from the fewest-bits architecture.
Arch cheapest_by(const CostContext& cc, int which) {
  Arch a = smallest_arch(*cc.space, *cc.config);
  std::vector<Decision> ds = decisions(*cc.space, a);
  double best = budgeted(arch_cost(cc, a), which);
  for (bool changed = true; changed;) {
    changed = false;
    for (Decision& d : ds) {
      for (int64_t c = 0; c < d.choices; ++c) {
        const int64_t keep = *d.index;
        if (c == keep) continue;
        *d.index = c;
        const double v = budgeted(arch_cost(cc, a), which);
        if (v < best * (1 - 1e-12)) {
          best = v;
          changed = true;
        } else {
          *d.index = keep;
        }
      }
    }
  }
  return a;
}
}  // namespace

Arch fastest_arch(const CostContext& cc) { return cheapest_by(cc, 0); }

void check_budget_feasible(const CostContext& cc, const Budget& b) {
  const double limits[3] = {b.latency_ms, b.memory_bytes, b.params};
  for (int which = 0; which < 3; ++which) {
    if (limits[which] <= 0) continue;
    const Arch a = cheapest_by(cc, which);
    const double best = budgeted(arch_cost(cc, a), which);
    JNAS_CHECK_CONFIG(best <= limits[which],
                      "the {} budget {} is below the smallest achievable {} in this search space "
                      "(architecture {}); raise the budget or widen the space (smaller widths, fewer blocks, "
                      "cheaper formats)",
                      kBudgetNames[which], budget_value(which, limits[which]), budget_value(which, best),
                      a.to_json(*cc.space).dump());
  }
}

Repair repair_to_budget(const CostContext& cc, const Budget& b, Arch start,
                        const std::map<std::string, std::vector<double>>& log_probs) {
  Repair r{std::move(start), {}};
  std::vector<Decision> ds = decisions(*cc.space, r.arch);
  double excess = budget_excess(arch_cost(cc, r.arch), b);
  while (excess > 0) {
    double best_score = std::numeric_limits<double>::infinity(), best_excess = excess;
    Decision* best_d = nullptr;
    int64_t best_c = -1;
    for (Decision& d : ds) {
      const auto it = log_probs.find(d.name);
      const int64_t cur = *d.index;
      for (int64_t c = 0; c < d.choices; ++c) {
        if (c == cur) continue;
        *d.index = c;
        const double e = budget_excess(arch_cost(cc, r.arch), b);
        *d.index = cur;
        if (e >= excess * (1 - 1e-12)) continue;
        const double lost = it == log_probs.end() ? 0.0 : std::max(0.0, it->second[cur] - it->second[c]);
        const double score = lost / (excess - e);
        if (score < best_score || (score == best_score && e < best_excess)) {
          best_score = score;
          best_excess = e;
          best_d = &d;
          best_c = c;
        }
      }
    }
    JNAS_CHECK_CONFIG(best_d != nullptr,
                      "budget repair: no single change of the architecture {} reduces its budget excess {:.4f} "
                      "any further; raise the budget",
                      r.arch.to_json(*cc.space).dump(), excess);
    r.moves.push_back(fmt::format("{}: {} -> {}", best_d->name, value_name(*cc.space, best_d->name, *best_d->index),
                                  value_name(*cc.space, best_d->name, best_c)));
    *best_d->index = best_c;
    excess = best_excess;
  }
  return r;
}

DnasResult run_dnas(Supernet& net, const std::vector<int64_t>& tokens, const CostContext& cc, const Budget& budget,
                    const DnasOptions& o, ProcessGroup& pg, const std::function<void(const Json&)>& log) {
  JNAS_CHECK_CONFIG(o.steps > 0 && o.batch > 0 && o.seq_len > 1, "search: steps, batch and seq_len must be positive");
  JNAS_CHECK_CONFIG(o.tau_start > 0 && o.tau_end > 0, "search: Gumbel temperatures must be > 0");
  JNAS_CHECK_CONFIG(o.penalty_form == "target" || o.penalty_form == "hinge",
                    "search: penalty form '{}' is not one of target, hinge", o.penalty_form);
  JNAS_CHECK_CONFIG(o.penalty_weight >= 0 && o.entropy_weight >= 0, "search: penalty and entropy weights must be >= 0");
  check_budget_feasible(cc, budget);
  // Windows of seq_len, alternately to the weight split (even) and the architecture split (odd).
  const int64_t nwin = static_cast<int64_t>(tokens.size()) / o.seq_len;
  JNAS_CHECK_CONFIG(nwin >= 2 * o.batch,
                    "search: {} tokens make {} windows of {}; need at least {} (2 x batch); give more text",
                    tokens.size(), nwin, o.seq_len, 2 * o.batch);
  const at::Tensor all = at::tensor(tokens, at::kLong).narrow(0, 0, nwin * o.seq_len).view({nwin, o.seq_len});
  const at::Tensor split_w = all.slice(0, 0, nwin, 2), split_a = all.slice(0, 1, nwin, 2);
  // Each rank reads its own slice of every batch.
  std::mt19937_64 rng(o.seed);
  auto batch_of = [&](const at::Tensor& split) {
    std::vector<int64_t> rows;
    std::uniform_int_distribution<int64_t> pick(0, split.size(0) - 1);
    for (int64_t i = 0; i < o.batch * pg.world_size(); ++i) rows.push_back(pick(rng));
    std::vector<int64_t> mine(rows.begin() + o.batch * pg.rank(), rows.begin() + o.batch * (pg.rank() + 1));
    return split.index_select(0, at::tensor(mine, at::kLong));
  };
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + 1);

  std::vector<std::string> names;
  std::vector<at::Tensor> arch_params, lora_params;
  for (auto& [n, t] : net.named_arch_parameters()) {
    names.push_back(n);
    arch_params.push_back(t);
  }
  for (auto& [n, t] : net.named_lora_parameters()) lora_params.push_back(t);
  Adam arch_opt(arch_params, o.lr_arch), lora_opt(lora_params, o.lr_lora);
  const bool train_lora = o.train_lora && !lora_params.empty();
  const profile::CostSpace cspace = cost_space(*cc.space, *cc.config, cc.block_rank);
  const at::Tensor head = net.lm_head().detach();
  const Budget& B = budget;
  // The expected peak memory: the expected weights and KV cache (differentiable) plus the rest of
  // the peak (activations, RoPE tables, runtime constant) of the current argmax architecture, a
  // constant of the step. The peak is a maximum over the forward pass, not an expectation of
  // table entries; it moves little with the architecture, and the repair checks it exactly.
  auto expected_memory = [&](const profile::ExpectedCost& e) {
    const profile::Cost c = arch_cost(cc, net.argmax());
    return e.weight_bytes + e.kv_cache_bytes + static_cast<double>(c.peak_bytes() - c.weight_bytes - c.kv_cache_bytes);
  };
  auto penalty_of = [&](const profile::ExpectedCost& e, const at::Tensor& memory) {
    at::Tensor p = at::zeros({}, at::kDouble);
    const bool target = o.penalty_form == "target";
    bool primary = true;  // the first budget set, in the order latency, memory, params
    auto term = [&](const at::Tensor& r) {
      const at::Tensor t = target && primary ? at::abs(r - 1.0) : at::relu(r - 1.0);
      primary = false;
      return t;
    };
    if (B.latency_ms > 0) p = p + term(e.latency_ms / B.latency_ms);
    if (B.memory_bytes > 0) p = p + term(memory / B.memory_bytes);
    if (B.params > 0) p = p + term(e.params / B.params);
    return p * o.penalty_weight;
  };
  auto loss_on = [&](const at::Tensor& ids, double tau) {
    const at::Tensor teacher = net.teacher_hidden(ids);
    const ArchDist d = net.distribution(o.relaxation, tau, gen);
    const at::Tensor h = net.hidden(ids, d);
    return head_loss(h.reshape({-1, h.size(-1)}), head, teacher.reshape({-1, teacher.size(-1)}), {}, o.loss);
  };

  DnasResult res;
  res.stop_reason = "steps";
  std::vector<bool> frozen(arch_params.size(), false);

  // ---- checkpoints ----
  CheckpointDir ckpt(o.checkpoint, "jointnas-search-checkpoint");
  auto save = [&](int64_t next_step) {
    std::map<std::string, at::Tensor> t;
    CheckpointDir::put(t, "arch", arch_params);
    CheckpointDir::put(t, "arch_m", arch_opt.m);
    CheckpointDir::put(t, "arch_v", arch_opt.v);
    CheckpointDir::put(t, "lora", lora_params);
    CheckpointDir::put(t, "lora_m", lora_opt.m);
    CheckpointDir::put(t, "lora_v", lora_opt.v);
    t["gumbel_rng"] = gen.get_state();
    std::ostringstream rs;
    rs << rng;
    Json j{{"arch_t", arch_opt.t}, {"lora_t", lora_opt.t}, {"data_rng", rs.str()}, {"names", names}, {"seed", o.seed},
           {"stop_reason", res.stop_reason}, {"steps_run", res.steps_run}};
    j["frozen"] = std::vector<bool>(frozen.begin(), frozen.end());
    ckpt.save(next_step, t, std::move(j));
  };
  int64_t start = 0;
  if (const auto l = ckpt.load_latest(o.steps)) {
    const Json& j = l->meta;
    JNAS_CHECK_IO(j.contains("names") && j["names"] == Json(names) && j.value("seed", Json(0)) == Json(o.seed),
                  "{}: a checkpoint of another search (decisions or seed differ); remove {} to start over",
                  l->json_path, o.checkpoint.dir);
    CheckpointDir::get(*l, "arch", arch_params);
    CheckpointDir::get(*l, "arch_m", arch_opt.m);
    CheckpointDir::get(*l, "arch_v", arch_opt.v);
    CheckpointDir::get(*l, "lora", lora_params);
    CheckpointDir::get(*l, "lora_m", lora_opt.m);
    CheckpointDir::get(*l, "lora_v", lora_opt.v);
    JNAS_CHECK_IO(l->tensors.count("gumbel_rng") != 0, "{}: no gumbel_rng", l->tensors_path);
    gen.set_state(l->tensors.at("gumbel_rng"));
    std::istringstream rs(j.value("data_rng", std::string()));
    rs >> rng;
    JNAS_CHECK_IO(!rs.fail(), "{}: unreadable data_rng", l->json_path);
    arch_opt.t = j.value("arch_t", int64_t{0});
    lora_opt.t = j.value("lora_t", int64_t{0});
    const std::vector<bool> fz = j.value("frozen", std::vector<bool>{});
    JNAS_CHECK_IO(fz.size() == frozen.size(), "{}: 'frozen' lists {} decisions, the search has {}", l->json_path,
                  fz.size(), frozen.size());
    frozen = fz;
    for (size_t i = 0; i < frozen.size(); ++i) arch_opt.frozen[i] = frozen[i];
    start = l->step;
    res.stop_reason = j.value("stop_reason", std::string("steps"));
    res.steps_run = j.value("steps_run", start);
    if (res.stop_reason != "steps") start = o.steps;  // it had stopped: only the ending is left
    JNAS_LOG_INFO("[search] resuming from {} at step {}", l->json_path, start);
    if (o.checkpoint.on_resume) o.checkpoint.on_resume(start);
  }
  // Names for the NaN/Inf guard.
  std::vector<std::pair<std::string, at::Tensor>> guarded;
  for (auto& [n, t] : net.named_arch_parameters()) guarded.emplace_back(n, t);
  for (auto& [n, t] : net.named_lora_parameters()) guarded.emplace_back(n, t);

  for (int64_t step = start; step < o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const double frac = o.steps > 1 ? static_cast<double>(step) / static_cast<double>(o.steps - 1) : 1.0;
    const double tau = o.tau_start * std::pow(o.tau_end / o.tau_start, frac);
    Json rec{{"step", step}, {"tau", tau}};
    if (train_lora) {
      arch_opt.set_requires_grad(false);
      lora_opt.zero_grad();
      const at::Tensor out = loss_on(batch_of(split_w), tau);
      check_finite(out, step, "search (weight update)", guarded, o.checkpoint.dir);
      out[0].backward();
      std::vector<at::Tensor> grads;
      for (auto& p : lora_params) grads.push_back(p.grad());
      pg.all_reduce_mean(grads);
      lora_opt.step();
      arch_opt.set_requires_grad(true);
      rec["weights_kd"] = out[1].item<double>();
    }
    if (step >= o.warmup_steps) {
      lora_opt.set_requires_grad(false);
      arch_opt.zero_grad();
      const at::Tensor out = loss_on(batch_of(split_a), tau);
      const profile::ExpectedCost e = profile::expected_cost(
          *cc.config, cspace, arch_probs(*cc.space, to_cpu_double(net.distribution(Relaxation::kSoftmax)), cc.block_rank),
          *cc.table, cc.workload, cc.dtype_bytes);
      const at::Tensor memory = expected_memory(e);  // before the step: what the penalty used
      const at::Tensor pen = penalty_of(e, memory);
      // Entropy ramp over the undecided decisions (mean normalised entropy, differentiable).
      at::Tensor ent = at::zeros({}, at::kDouble);
      int64_t undecided = 0;
      for (size_t i = 0; i < arch_params.size(); ++i) {
        if (frozen[i]) continue;
        const at::Tensor lp = at::log_softmax(arch_params[i].to(at::kCPU).to(at::kDouble), 0);
        ent = ent - (lp.exp() * lp).sum() / std::log(static_cast<double>(arch_params[i].numel()));
        ++undecided;
      }
      const double ramp = o.entropy_weight * frac;
      const at::Tensor ent_term = undecided > 0 ? ent * (ramp / static_cast<double>(undecided)) : ent;
      const at::Tensor total = out[0] + (pen + ent_term).to(out.device(), out.scalar_type());
      check_finite(at::cat({out, total.reshape({1})}), step, "search (architecture update)", guarded, o.checkpoint.dir);
      total.backward();
      rec["entropy_term"] = ent_term.item<double>();
      std::vector<at::Tensor> grads;
      for (auto& p : arch_params) grads.push_back(p.grad());
      pg.all_reduce_mean(grads);
      arch_opt.step();
      lora_opt.set_requires_grad(true);
      rec["kd"] = out[1].item<double>();
      rec["top1_agreement"] = out[3].item<double>();
      rec["penalty"] = pen.item<double>();
      rec["expected_latency_ms"] = e.latency_ms.item<double>();
      rec["expected_memory_bytes"] = memory.item<double>();
      rec["expected_params"] = e.params.item<double>();
    }
    // Entropy: freeze decided decisions at their argmax (logits -1e4 elsewhere: exactly one-hot
    // under softmax and under Gumbel noise, which is bounded by ~25).
    double sum_h = 0;
    int64_t decided = 0;
    Json ent = Json::object();
    for (size_t i = 0; i < arch_params.size(); ++i) {
      const double h = normalised_entropy(arch_params[i]);
      sum_h += h;
      ent[names[i]] = h;
      if (!frozen[i] && step >= o.warmup_steps && h < o.entropy_threshold) {
        at::NoGradGuard ng;
        const int64_t am = arch_params[i].argmax().item<int64_t>();
        arch_params[i].fill_(-1e4);
        arch_params[i][am] = 0.0;
        frozen[i] = true;
        arch_opt.frozen[i] = true;
      }
      decided += frozen[i] ? 1 : 0;
    }
    const double mean_h = arch_params.empty() ? 0.0 : sum_h / static_cast<double>(arch_params.size());
    rec["mean_entropy"] = mean_h;
    rec["decided"] = decided;
    rec["decisions"] = arch_params.size();
    rec["entropy"] = ent;
    rec["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (log) log(rec);
    res.steps_run = step + 1;
    if (step >= o.warmup_steps && decided == static_cast<int64_t>(arch_params.size())) {
      res.stop_reason = "decided";
    } else if (step >= o.warmup_steps && mean_h < o.stop_entropy) {
      res.stop_reason = "entropy";
    }
    const bool stop = res.stop_reason != "steps";
    const bool interrupted = ckpt.interrupted();
    if (ckpt.due(step + 1, stop || step + 1 == o.steps)) save(step + 1);
    if (stop) break;
    if (interrupted) {
      throw Interrupted(fmt::format("search interrupted after step {}{}", step + 1,
                                    !ckpt.enabled() ? " (no checkpoint directory: the progress is lost)"
                                                             : "; checkpoint written, run the same command again to resume"));
    }
  }
  res.argmax = net.argmax();
  std::map<std::string, std::vector<double>> lp;
  for (size_t i = 0; i < arch_params.size(); ++i) {
    const at::Tensor l = at::log_softmax(arch_params[i].detach().to(at::kCPU).to(at::kDouble), 0);
    lp[names[i]] = std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
  }
  Repair r = repair_to_budget(cc, budget, res.argmax, lp);
  res.arch = r.arch;
  res.repairs = r.moves;
  res.predicted = arch_cost(cc, res.arch);
  return res;
}

Json arch_json(const CostContext& cc, const DnasResult& r, const Budget& b) {
  auto [cfg, specs] = arch_specs(*cc.config, *cc.space, r.arch, cc.block_rank);
  cfg.layer_specs = specs;
  Json idx = Json::object();
  Arch a = r.arch;
  for (const Decision& d : decisions(*cc.space, a)) idx[d.name] = *d.index;
  return Json{{"format", "jointnas-arch"},
              {"version", 1},
              {"architecture", r.arch.to_json(*cc.space)},
              {"indices", idx},
              {"argmax_before_repair", r.argmax.to_json(*cc.space)},
              {"repairs", r.repairs},
              {"block_rank", cc.block_rank},
              {"config", cfg.to_json()},
              {"predicted", r.predicted.to_json()},
              {"budget", b.to_json()},
              {"workload", cc.workload.to_json()},
              {"steps_run", r.steps_run},
              {"stop_reason", r.stop_reason}};
}

Arch arch_from_json(const Json& j, const SearchSpace& s, const std::string& src) {
  JNAS_CHECK_IO(j.is_object() && j.value("format", "") == "jointnas-arch",
                "{}: not a jointnas arch.json (expected \"format\": \"jointnas-arch\")", src);
  JNAS_CHECK_IO(j.contains("indices") && j["indices"].is_object(), "{}: 'indices' must be an object", src);
  Arch a = largest_arch(s);
  const Json& idx = j["indices"];
  for (Decision& d : decisions(s, a)) {
    JNAS_CHECK_IO(idx.contains(d.name), "{}: indices lack '{}' (arch.json from another search space?)", src, d.name);
    const auto v = get_int(idx, d.name.c_str(), src);
    JNAS_CHECK_IO(v && *v >= 0 && *v < d.choices, "{}: '{}' must be an index in [0, {})", src, d.name, d.choices);
    *d.index = *v;
  }
  return a;
}

}  // namespace jointnas::search
