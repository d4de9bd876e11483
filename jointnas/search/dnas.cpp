// The DNAS loop; see dnas.h. The loop's skeleton (data order, distillation loss, optimizer steps,
// checkpoints, interrupt) is search/trainer.h, shared with finetune.
#include "jointnas/search/dnas.h"

#include <chrono>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/log.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/expected_cost.h"
#include "jointnas/search/cost.h"
#include "jointnas/search/trainer.h"

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

// Everything a search step changes, and what a checkpoint holds.
struct SearchState {
  std::vector<std::string> names;  // of the architecture logits, in order
  Adam arch, lora;
  std::vector<bool> frozen;        // decided decisions
  BatchSampler sampler;
  at::Generator gumbel;
  DnasResult res;
};

SearchState make_state(const Supernet& net, const DnasOptions& o) {
  std::vector<std::string> names;
  std::vector<at::Tensor> arch, lora;
  for (auto& [n, t] : net.named_arch_parameters()) {
    names.push_back(n);
    arch.push_back(t);
  }
  for (auto& [n, t] : net.named_lora_parameters()) lora.push_back(t);
  const size_t n = arch.size();
  SearchState s{std::move(names), Adam(std::move(arch), o.lr_arch), Adam(std::move(lora), o.lr_lora),
                std::vector<bool>(n, false), BatchSampler(o.seed), at::make_generator<at::CPUGeneratorImpl>(o.seed + 1),
                DnasResult{}};
  s.res.stop_reason = "steps";
  return s;
}

void save_state(CheckpointDir& ckpt, const SearchState& s, const DnasOptions& o, int64_t next_step) {
  std::map<std::string, at::Tensor> t;
  put_adam(t, "arch", s.arch);
  put_adam(t, "lora", s.lora);
  t["gumbel_rng"] = s.gumbel.get_state();
  Json j{{"arch_t", s.arch.t}, {"lora_t", s.lora.t}, {"data_rng", s.sampler.state()}, {"names", s.names},
         {"seed", o.seed}, {"stop_reason", s.res.stop_reason}, {"steps_run", s.res.steps_run}};
  j["frozen"] = std::vector<bool>(s.frozen.begin(), s.frozen.end());
  ckpt.save(next_step, t, std::move(j));
}

// Resumes from the committed checkpoint, if any; returns the step to continue from.
int64_t restore_state(CheckpointDir& ckpt, SearchState& s, const DnasOptions& o) {
  const auto l = ckpt.load_latest(o.steps);
  if (!l) return 0;
  const Json& j = l->meta;
  JNAS_CHECK_IO(j.contains("names") && j["names"] == Json(s.names) && j.value("seed", Json(0)) == Json(o.seed),
                "{}: a checkpoint of another search (decisions or seed differ); remove {} to start over", l->json_path,
                o.checkpoint.dir);
  get_adam(*l, "arch", s.arch);
  get_adam(*l, "lora", s.lora);
  JNAS_CHECK_IO(l->tensors.count("gumbel_rng") != 0, "{}: no gumbel_rng", l->tensors_path);
  s.gumbel.set_state(l->tensors.at("gumbel_rng"));
  s.sampler.restore(get_string(j, "data_rng", l->json_path).value_or(""), l->json_path);
  s.arch.t = get_int(j, "arch_t", l->json_path).value_or(0);
  s.lora.t = get_int(j, "lora_t", l->json_path).value_or(0);
  JNAS_CHECK_IO(!j.contains("frozen") || j["frozen"].is_array(), "{}: 'frozen' must be a list", l->json_path);
  std::vector<bool> fz;
  for (const Json& f : j.value("frozen", Json::array())) {
    JNAS_CHECK_IO(f.is_boolean(), "{}: 'frozen' must hold true or false", l->json_path);
    fz.push_back(f.get<bool>());
  }
  JNAS_CHECK_IO(fz.size() == s.frozen.size(), "{}: 'frozen' lists {} decisions, the search has {}", l->json_path,
                fz.size(), s.frozen.size());
  s.frozen = fz;
  for (size_t i = 0; i < s.frozen.size(); ++i) s.arch.frozen[i] = s.frozen[i];
  // A checkpoint's logits were finite when saved; a damaged or edited file must not decide the
  // architecture by NaN comparisons (NaN logits make every argmax index 0, the smallest choice).
  for (size_t i = 0; i < s.arch.params.size(); ++i) {
    JNAS_CHECK_IO(at::isfinite(s.arch.params[i]).all().item<bool>(),
                  "{}: the architecture logits '{}' are not finite; remove {} to start the search over", l->tensors_path,
                  s.names[i], o.checkpoint.dir);
  }
  int64_t start = l->step;
  s.res.stop_reason = get_string(j, "stop_reason", l->json_path).value_or("steps");
  s.res.steps_run = get_int(j, "steps_run", l->json_path).value_or(start);
  if (s.res.stop_reason != "steps") start = o.steps;  // it had stopped: only the ending is left
  JNAS_LOG_INFO("[search] resuming from {} at step {}", l->json_path, start);
  if (o.checkpoint.on_resume) o.checkpoint.on_resume(start);
  return start;
}

// The budget penalty of docs/search.md on the expected cost; `memory` is the expected peak.
at::Tensor penalty_of(const profile::ExpectedCost& e, const at::Tensor& memory, const Budget& b, const DnasOptions& o) {
  at::Tensor p = at::zeros({}, at::kDouble);
  const bool target = o.penalty_form == "target";
  bool primary = true;  // the first budget set, in the order latency, memory, params
  auto term = [&](const at::Tensor& r) {
    const at::Tensor t = target && primary ? at::abs(r - 1.0) : at::relu(r - 1.0);
    primary = false;
    return t;
  };
  if (b.latency_ms > 0) p = p + term(e.latency_ms / b.latency_ms);
  if (b.memory_bytes > 0) p = p + term(memory / b.memory_bytes);
  if (b.params > 0) p = p + term(e.params / b.params);
  return p * o.penalty_weight;
}

// The entropy ramp over the undecided decisions (mean normalised entropy, differentiable).
at::Tensor entropy_term(const SearchState& s, double ramp) {
  at::Tensor ent = at::zeros({}, at::kDouble);
  int64_t undecided = 0;
  for (size_t i = 0; i < s.arch.params.size(); ++i) {
    if (s.frozen[i]) continue;
    const at::Tensor lp = at::log_softmax(s.arch.params[i].to(at::kCPU).to(at::kDouble), 0);
    ent = ent - (lp.exp() * lp).sum() / std::log(static_cast<double>(s.arch.params[i].numel()));
    ++undecided;
  }
  return undecided > 0 ? ent * (ramp / static_cast<double>(undecided)) : ent;
}

// Freezes the decided decisions at their argmax (logits -1e4 elsewhere: exactly one-hot under
// softmax and under Gumbel noise, which is bounded by ~25); records the entropies in `rec`.
void freeze_decided(SearchState& s, const DnasOptions& o, int64_t step, Json& rec) {
  double sum_h = 0;
  int64_t decided = 0;
  Json ent = Json::object();
  for (size_t i = 0; i < s.arch.params.size(); ++i) {
    const double h = normalised_entropy(s.arch.params[i]);
    sum_h += h;
    ent[s.names[i]] = h;
    if (!s.frozen[i] && step >= o.warmup_steps && h < o.entropy_threshold) {
      at::NoGradGuard ng;
      const int64_t am = s.arch.params[i].argmax().item<int64_t>();
      s.arch.params[i].fill_(-1e4);
      s.arch.params[i][am] = 0.0;
      s.frozen[i] = true;
      s.arch.frozen[i] = true;
    }
    decided += s.frozen[i] ? 1 : 0;
  }
  const double mean_h = s.arch.params.empty() ? 0.0 : sum_h / static_cast<double>(s.arch.params.size());
  rec["mean_entropy"] = mean_h;
  rec["decided"] = decided;
  rec["decisions"] = s.arch.params.size();
  rec["entropy"] = ent;
  if (step >= o.warmup_steps && decided == static_cast<int64_t>(s.arch.params.size())) {
    s.res.stop_reason = "decided";
  } else if (step >= o.warmup_steps && mean_h < o.stop_entropy) {
    s.res.stop_reason = "entropy";
  }
}

std::map<std::string, std::vector<double>> log_probs_of(const SearchState& s) {
  std::map<std::string, std::vector<double>> lp;
  for (size_t i = 0; i < s.arch.params.size(); ++i) {
    const at::Tensor l = at::log_softmax(s.arch.params[i].detach().to(at::kCPU).to(at::kDouble), 0);
    lp[s.names[i]] = std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
  }
  return lp;
}

// Everything a step reads that does not change.
struct StepContext {
  Supernet& net;
  const CostContext& cc;
  const Budget& budget;
  const DnasOptions& o;
  ProcessGroup& pg;
  at::Tensor split_w, split_a;  // windows of the weight and architecture updates
  profile::CostSpace cspace;
  std::vector<std::pair<std::string, at::Tensor>> guarded;  // for the NaN/Inf guard
};

// The architecture update: KD + budget penalty + entropy ramp on a batch of the odd windows.
void arch_update(StepContext& c, SearchState& s, int64_t step, double tau, double frac, Json& rec) {
  s.lora.set_requires_grad(false);
  s.arch.zero_grad();
  const at::Tensor ids = s.sampler.draw(c.split_a, c.o.batch, c.pg);
  const at::Tensor out = distillation_loss(c.net, ids, c.net.distribution(c.o.relaxation, tau, s.gumbel), c.o.loss);
  const profile::ExpectedCost e = profile::expected_cost(
      *c.cc.config, c.cspace,
      arch_probs(*c.cc.space, to_cpu_double(c.net.distribution(Relaxation::kSoftmax)), c.cc.block_rank), *c.cc.table,
      c.cc.workload, c.cc.dtype_bytes);
  // The expected peak memory: the expected weights and KV cache (differentiable) plus the rest of
  // the peak (activations, RoPE tables, runtime constant) of the current argmax architecture, a
  // constant of the step. The peak is a maximum over the forward pass, not an expectation of
  // table entries; it moves little with the architecture, and the repair checks it exactly.
  const profile::Cost argmax_cost = arch_cost(c.cc, c.net.argmax());
  const at::Tensor memory =
      e.weight_bytes + e.kv_cache_bytes +
      static_cast<double>(argmax_cost.peak_bytes() - argmax_cost.weight_bytes - argmax_cost.kv_cache_bytes);
  const at::Tensor pen = penalty_of(e, memory, c.budget, c.o);
  const at::Tensor ent_term = entropy_term(s, c.o.entropy_weight * frac);
  const at::Tensor total = out[0] + (pen + ent_term).to(out.device(), out.scalar_type());
  check_finite(at::cat({out, total.reshape({1})}), step, "search (architecture update)", c.guarded,
               c.o.checkpoint.dir);
  adam_step(s.arch, total, c.pg);
  s.lora.set_requires_grad(true);
  rec["entropy_term"] = ent_term.item<double>();
  rec["kd"] = out[1].item<double>();
  rec["top1_agreement"] = out[3].item<double>();
  rec["penalty"] = pen.item<double>();
  rec["expected_latency_ms"] = e.latency_ms.item<double>();
  rec["expected_memory_bytes"] = memory.item<double>();
  rec["expected_params"] = e.params.item<double>();
}

// One alternating step; returns whether the search stops.
bool search_step(StepContext& c, SearchState& s, int64_t step, bool train_lora,
                 const std::function<void(const Json&)>& log) {
  const DnasOptions& o = c.o;
  const auto t0 = std::chrono::steady_clock::now();
  const double frac = o.steps > 1 ? static_cast<double>(step) / static_cast<double>(o.steps - 1) : 1.0;
  const double tau = o.tau_start * std::pow(o.tau_end / o.tau_start, frac);
  Json rec{{"step", step}, {"tau", tau}};
  if (train_lora) {
    s.arch.set_requires_grad(false);
    s.lora.zero_grad();
    const at::Tensor ids = s.sampler.draw(c.split_w, o.batch, c.pg);
    const at::Tensor out = distillation_loss(c.net, ids, c.net.distribution(o.relaxation, tau, s.gumbel), o.loss);
    check_finite(out, step, "search (weight update)", c.guarded, o.checkpoint.dir);
    adam_step(s.lora, out[0], c.pg);
    s.arch.set_requires_grad(true);
    rec["weights_kd"] = out[1].item<double>();
  }
  if (step >= o.warmup_steps) arch_update(c, s, step, tau, frac, rec);
  freeze_decided(s, o, step, rec);
  rec["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (log) log(rec);
  s.res.steps_run = step + 1;
  return s.res.stop_reason != "steps";
}

void check_options(const DnasOptions& o) {
  JNAS_CHECK_CONFIG(o.steps > 0 && o.batch > 0 && o.seq_len > 1, "search: steps, batch and seq_len must be positive");
  JNAS_CHECK_CONFIG(o.tau_start > 0 && o.tau_end > 0, "search: Gumbel temperatures must be > 0");
  JNAS_CHECK_CONFIG(o.penalty_form == "target" || o.penalty_form == "hinge",
                    "search: penalty form '{}' is not one of target, hinge", o.penalty_form);
  JNAS_CHECK_CONFIG(o.penalty_weight >= 0 && o.entropy_weight >= 0, "search: penalty and entropy weights must be >= 0");
}

}  // namespace

DnasResult run_dnas(Supernet& net, const std::vector<int64_t>& tokens, const CostContext& cc, const Budget& budget,
                    const DnasOptions& o, ProcessGroup& pg, const std::function<void(const Json&)>& log) {
  check_options(o);
  check_budget_feasible(cc, budget);
  // Windows of seq_len, alternately to the weight split (even) and the architecture split (odd).
  const at::Tensor all = cut_windows(tokens, o.seq_len);
  const int64_t nwin = all.size(0);
  JNAS_CHECK_CONFIG(nwin >= 2 * o.batch,
                    "search: {} tokens make {} windows of {}; need at least {} (2 x batch); give more text",
                    tokens.size(), nwin, o.seq_len, 2 * o.batch);
  StepContext c{net, cc, budget, o, pg, all.slice(0, 0, nwin, 2), all.slice(0, 1, nwin, 2),
                cost_space(*cc.space, *cc.config, cc.block_rank), {}};
  for (auto& [n, t] : net.named_arch_parameters()) c.guarded.emplace_back(n, t);
  for (auto& [n, t] : net.named_lora_parameters()) c.guarded.emplace_back(n, t);
  SearchState s = make_state(net, o);
  const bool train_lora = o.train_lora && !s.lora.params.empty();

  CheckpointDir ckpt(o.checkpoint, "jointnas-search-checkpoint");
  const int64_t start = restore_state(ckpt, s, o);
  run_steps(
      ckpt, start, o.steps, "search", [&](int64_t step) { return search_step(c, s, step, train_lora, log); },
      [&](int64_t next) { save_state(ckpt, s, o, next); });
  DnasResult res = s.res;
  res.argmax = net.argmax();
  Repair r = repair_to_budget(cc, budget, res.argmax, log_probs_of(s));
  res.arch = r.arch;
  res.repairs = r.moves;
  res.predicted = arch_cost(cc, res.arch);
  return res;
}

}  // namespace jointnas::search
