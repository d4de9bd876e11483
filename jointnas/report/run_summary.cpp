// The report of `jointnas run`; see run_summary.h.
#include "jointnas/report/run_summary.h"

#include <algorithm>

#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace jointnas::report {
namespace {

double num(const Json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0;
}
std::string opt4(const std::optional<double>& v) { return v ? fmt::format("{:.4f}", *v) : "-"; }
std::string opt3(const std::optional<double>& v) { return v ? fmt::format("{:.3f}", *v) : "-"; }
std::string fmt_of(const Json& l, const char* k) {
  return l.contains(k) && l[k].is_string() ? l[k].get<std::string>() : std::string("bf16");
}

// The budget and what was measured against it, in sentences.
// Accuracy per task of both models from their `eval tasks` JSON; first the mean over the tasks both
// have (items: "arc_easy, piqa (200 items each)"), then one row per task.
struct TaskRow {
  std::string items;
  std::optional<double> original, found;
  std::optional<double> se_original, se_found;
};
std::vector<TaskRow> task_accuracies(const RunSummary& s) {
  auto by_task = [](const Json& j) {
    std::map<std::string, std::pair<double, double>> m;
    if (!j.is_object() || !j.contains("results") || !j["results"].is_array()) return m;
    for (const Json& r : j["results"]) {
      if (r.is_object() && r.contains("acc") && r["acc"].is_number()) {
        m[r.value("task", std::string("?"))] = {r["acc"].get<double>(), num(r, "acc_stderr")};
      }
    }
    return m;
  };
  const auto o = by_task(s.tasks_original), f = by_task(s.tasks_found);
  std::vector<TaskRow> rows;
  double so = 0, sf = 0;
  std::vector<std::string> names;
  for (const auto& [task, v] : f) {
    TaskRow r;
    r.items = task;
    r.found = v.first, r.se_found = v.second;
    if (auto it = o.find(task); it != o.end()) {
      r.original = it->second.first, r.se_original = it->second.second;
      so += it->second.first, sf += v.first;
      names.push_back(task);
    }
    rows.push_back(r);
  }
  if (names.empty()) return rows;
  const int64_t limit = s.tasks_found.value("limit", int64_t{0});
  TaskRow mean;
  mean.items = fmt::format("{}{}", fmt::join(names, ", "), limit > 0 ? fmt::format(" (first {} items each)", limit) : "");
  mean.original = so / static_cast<double>(names.size());
  mean.found = sf / static_cast<double>(names.size());
  rows.insert(rows.begin(), mean);
  return rows;
}

std::string verdict(const RunSummary& s) {
  std::string md;
  const double mem_budget = num(s.budget, "memory_bytes");
  if (s.budget_latency_ms > 0) {
    md += fmt::format("The latency budget is {:.4f} ms{} for a {}.", s.budget_latency_ms,
                      s.budget_text.empty() ? "" : fmt::format(" ({})", s.budget_text), workload_words(s.workload));
    const double here = measured_latency_budget(s.budget_text, s.budget_latency_ms, s.measured_original_ms);
    if (here != s.budget_latency_ms) {
      md += fmt::format(" On this machine now, {} of the original's measured {:.4f} ms is {:.4f} ms.", s.budget_text,
                        *s.measured_original_ms, here);
    }
    if (s.measured_found_ms) {
      md += fmt::format(" The found model measures {:.4f} ms, which {} the budget.", *s.measured_found_ms,
                        *s.measured_found_ms <= here ? "meets" : "MISSES");
    }
  } else {
    md += fmt::format("The workload is a {}.", workload_words(s.workload));
  }
  if (mem_budget > 0) {
    md += fmt::format(" The memory budget is {:.3f} MiB; the found model's predicted peak is {:.3f} MiB, which {} it "
                      "(predicted, not measured).",
                      mem_budget / 1048576.0, num(s.predicted, "peak_bytes") / 1048576.0,
                      num(s.predicted, "peak_bytes") <= mem_budget ? "meets" : "MISSES");
  }
  if (num(s.budget, "params") > 0) {
    md += fmt::format(" The parameter budget is {:.0f}; the found model has {:.0f}.", num(s.budget, "params"),
                      num(s.predicted, "params"));
  }
  if (s.measured_runtime == "llama.cpp" && s.measured_original_ms && s.measured_found_ms) {
    const double here = measured_latency_budget(s.budget_text, s.budget_latency_ms, s.measured_original_ms);
    md += fmt::format(" Measured by llama.cpp {} ({} thread{}) on the GGUF files, the found model runs at {:.3f}x of "
                      "the f16 original{}.",
                      s.measured_runtime_version, s.measured_threads, s.measured_threads == 1 ? "" : "s",
                      *s.measured_found_ms / *s.measured_original_ms,
                      here > 0 ? fmt::format(", which {} the {} budget", *s.measured_found_ms <= here ? "meets" : "MISSES",
                                             s.budget_text.empty() ? fmt::format("{:.4f} ms", here) : s.budget_text)
                               : "");
  }
  if (s.measured_original_ms && s.measured_found_ms && *s.measured_found_ms > 0) {
    md += fmt::format(" Measured on this machine, the found model is {:.2f}x as fast as the original ({:.4f} ms against "
                      "{:.4f} ms{}).",
                      *s.measured_original_ms / *s.measured_found_ms, *s.measured_found_ms, *s.measured_original_ms,
                      s.measured_rounds > 0
                          ? fmt::format(", each the fastest of {} interleaved rounds in one process", s.measured_rounds)
                          : "");
  }
  if (s.ppl_original && s.ppl_found && *s.ppl_original > 0) {
    md += fmt::format(" Its perplexity on {} is {:.3f} against the original's {:.3f} ({:.2f}x).",
                      s.eval_text.empty() ? "the evaluation text" : s.eval_text, *s.ppl_found, *s.ppl_original,
                      *s.ppl_found / *s.ppl_original);
  }
  const auto a = task_accuracies(s);
  if (!a.empty() && a.front().found && a.front().original) {
    md += fmt::format(" Its mean accuracy over {} is {:.3f} against the original's {:.3f} ({:+.3f}).", a.front().items,
                      *a.front().found, *a.front().original, *a.front().found - *a.front().original);
  }
  return md + "\n\n";
}

std::string layer_table(const RunSummary& s) {
  std::string md =
      "| layer | kept | heads / kv | head size | MLP width | qkv | o | gate_up | down |\n|---:|---|---|---:|---:|---|---|---|---|\n";
  for (size_t i = 0; i < s.layer_specs.size(); ++i) {
    const Json& l = s.layer_specs[i];
    if (l.value("skip", false)) {
      md += fmt::format("| {} | dropped | - | - | - | - | - | - | - |\n", i);
      continue;
    }
    md += fmt::format("| {} | yes | {:.0f} / {:.0f} | {:.0f} | {:.0f} | {} | {} | {} | {} |\n", i,
                      num(l, "num_attention_heads"), num(l, "num_key_value_heads"), num(l, "head_dim"),
                      num(l, "intermediate_size"), fmt_of(l, "format_qkv"), fmt_of(l, "format_o"),
                      fmt_of(l, "format_gate_up"), fmt_of(l, "format_down"));
  }
  return md;
}

}  // namespace

std::string workload_words(const Json& w) {
  const std::string kind = w.value("kind", std::string("decode"));
  if (kind == "prefill") {
    return fmt::format("prefill of {} tokens at batch {}", w.value("tokens", int64_t{0}), w.value("batch", int64_t{1}));
  }
  return fmt::format("decode step (one new token) at context {} and batch {}", w.value("context", int64_t{0}),
                     w.value("batch", int64_t{1}));
}

namespace {

// How the architecture was chosen (the portfolio's candidates) and how much of the budget it uses,
// with the next larger architecture when it leaves more than 3 % unused.
std::string selection_text(const RunSummary& s) {
  std::string md;
  const Json& sel = s.selection;
  if (sel.is_object() && sel.contains("candidates") && sel["candidates"].is_array()) {
    md += fmt::format("The architecture is the portfolio's winner, **{}**: its held-out KL after a brief finetune is "
                      "{:.4f} nats lower than the next candidate's.\n\n",
                      sel.value("winner", std::string("?")), num(sel, "margin_kl"));
    md += "| candidate | predicted (ms) | held-out KL before | after finetune |\n|---|---:|---:|---:|\n";
    for (const Json& c : sel["candidates"]) {
      md += fmt::format("| {}{} | {:.4f} | {:.4f} | {:.4f} |\n", c.value("name", std::string("?")),
                        c.contains("same_as") ? " (= " + c.value("same_as", std::string()) + ")" : "",
                        num(c.value("predicted", Json::object()), "latency_ms"), num(c, "heldout_kl_before"),
                        num(c, "heldout_kl"));
    }
    md += "\n";
  } else if (sel.is_object()) {
    md += fmt::format("The architecture is the {} one.\n\n", sel.value("winner", std::string("?")));
  }
  if (s.budget_use.is_object() && s.budget_use.contains("use")) {
    const double use = num(s.budget_use, "use");
    md += fmt::format("It uses {:.1f} % of the {} budget by the table.", 100 * use,
                      s.budget_use.value("binding", std::string("latency")));
    const Json next = sel.is_object() ? sel.value("derivation", Json::object()).value("next_larger", Json()) : Json();
    if (use < 0.97 && next.is_object()) {
      md += fmt::format(" The next larger architecture the derivation knows predicts {:.4f} ms ({:.1f} % of the "
                        "budget).",
                        num(next.value("predicted", Json::object()), "latency_ms"), 100 * num(next, "budget_use"));
    }
    md += "\n\n";
  }
  return md;
}

}  // namespace

double measured_latency_budget(const std::string& budget_text, double budget_ms, std::optional<double> measured_original_ms) {
  if (budget_text.size() < 2 || budget_text.back() != 'x' || !measured_original_ms || *measured_original_ms <= 0) {
    return budget_ms;
  }
  char* end = nullptr;
  const double fraction = std::strtod(budget_text.c_str(), &end);
  if (end != budget_text.c_str() + budget_text.size() - 1 || !(fraction > 0) || !std::isfinite(fraction)) return budget_ms;
  return fraction * *measured_original_ms;
}

Json summary_json(const RunSummary& s) {
  auto opt = [](const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); };
  Json lat{{"runtime", s.measured_runtime.empty() ? "jointnas" : s.measured_runtime},
           {"original_ms", opt(s.measured_original_ms)},
           {"found_ms", opt(s.measured_found_ms)},
           {"rounds", s.measured_rounds}};
  if (!s.measured_runtime_version.empty()) lat["version"] = s.measured_runtime_version;
  if (s.measured_threads > 0) lat["threads"] = s.measured_threads;
  if (s.measured_original_ms && s.measured_found_ms && *s.measured_original_ms > 0) {
    lat["ratio_found_to_original"] = *s.measured_found_ms / *s.measured_original_ms;
  }
  if (s.budget_latency_ms > 0) {
    const double here = measured_latency_budget(s.budget_text, s.budget_latency_ms, s.measured_original_ms);
    lat["budget_ms"] = here;  // a relative budget: that share of the original measured in the same rounds
    lat["meets_budget"] = s.measured_found_ms ? Json(*s.measured_found_ms <= here) : Json(nullptr);
  }
  return Json{{"run_dir", s.run_dir},
              {"workload", s.workload},
              {"budget", s.budget_text},
              {"budget_latency_ms", s.budget_latency_ms},
              {"latency", lat},
              {"ppl_original", opt(s.ppl_original)},
              {"ppl_found", opt(s.ppl_found)},
              {"tasks_original", s.tasks_original},
              {"tasks_found", s.tasks_found},
              {"predicted_original", s.dense},
              {"predicted_found", s.predicted}};
}

std::string summary_markdown(const RunSummary& s) {
  auto mib = [](const Json& c) { return (num(c, "weight_bytes") + num(c, "kv_cache_bytes")) / 1048576.0; };
  std::string md = fmt::format("# jointnas run: {}\n\n", s.run_dir);
  md += verdict(s);
  md += "| | original | found |\n|---|---:|---:|\n";
  md += fmt::format("| latency, measured (ms) | {} | {} |\n", opt4(s.measured_original_ms), opt4(s.measured_found_ms));
  md += fmt::format("| latency, predicted by the table (ms) | {:.4f} | {:.4f} |\n", num(s.dense, "latency_ms"),
                    num(s.predicted, "latency_ms"));
  md += fmt::format("| peak memory, predicted (MiB) | {:.3f} | {:.3f} |\n", num(s.dense, "peak_bytes") / 1048576.0,
                    num(s.predicted, "peak_bytes") / 1048576.0);
  md += fmt::format("| of which weights + KV cache (MiB) | {:.3f} | {:.3f} |\n", mib(s.dense), mib(s.predicted));
  md += fmt::format("| parameters | {:.0f} | {:.0f} |\n", num(s.dense, "params"), num(s.predicted, "params"));
  md += fmt::format("| hidden size | {} | {} |\n", s.hidden_size_original, s.hidden_size);
  if (s.ppl_original || s.ppl_found) {
    md += fmt::format("| perplexity (held-out text) | {} | {} |\n", opt3(s.ppl_original), opt3(s.ppl_found));
  }
  const auto tasks = task_accuracies(s);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskRow& r = tasks[i];
    auto cell = [](const std::optional<double>& v, const std::optional<double>& se) {
      if (!v) return std::string("-");
      return se && std::isfinite(*se) ? fmt::format("{:.3f} ± {:.3f}", *v, *se) : fmt::format("{:.3f}", *v);
    };
    md += i == 0 && tasks.size() > 1 && r.original
              ? fmt::format("| mean task accuracy ({}) | {} | {} |\n", r.items, cell(r.original, {}), cell(r.found, {}))
              : fmt::format("| accuracy, {} | {} | {} |\n", r.items, cell(r.original, r.se_original), cell(r.found, r.se_found));
  }
  md += fmt::format("\nSearch: {} steps (stop: {}); finetune KD {} -> {}.\n\n", s.steps_run, s.stop_reason, opt4(s.kd_first),
                    opt4(s.kd_last));
  md += selection_text(s);
  md += layer_table(s);
  if (!s.sample.empty()) md += fmt::format("\nA greedy sample of the found model:\n\n> {}\n", s.sample);
  md += "\n![found architecture](report.svg)\n";
  return md;
}

std::string architecture_svg(const Json& layers) {
  const int64_t n = static_cast<int64_t>(layers.size());
  const int W = 60 * static_cast<int>(n) + 80, H = 260;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="10">)", W, H);
  svg += R"(<text x="10" y="14" font-size="12">found architecture per layer: attention width (blue) and MLP width (orange) as a fraction of the widest choice</text>)";
  double max_attn = 1, max_mlp = 1;
  for (const Json& l : layers) {
    max_attn = std::max(max_attn, num(l, "num_attention_heads") * num(l, "head_dim"));
    max_mlp = std::max(max_mlp, num(l, "intermediate_size"));
  }
  for (int64_t i = 0; i < n; ++i) {
    const Json& l = layers[static_cast<size_t>(i)];
    const int x = 50 + 60 * static_cast<int>(i);
    if (l.value("skip", false)) {
      svg += fmt::format(R"(<rect x="{}" y="40" width="44" height="160" fill="#ddd"/><text x="{}" y="120">dropped</text>)", x,
                         x + 2);
    } else {
      const double a = num(l, "num_attention_heads") * num(l, "head_dim") / max_attn, m = num(l, "intermediate_size") / max_mlp;
      svg += fmt::format(R"(<rect x="{}" y="{:.1f}" width="20" height="{:.1f}" fill="#4878d0"/>)", x, 200 - 160 * a, 160 * a);
      svg += fmt::format(R"(<rect x="{}" y="{:.1f}" width="20" height="{:.1f}" fill="#ee854a"/>)", x + 22, 200 - 160 * m, 160 * m);
      svg += fmt::format(R"(<text x="{}" y="215">{}</text><text x="{}" y="227">{}</text>)", x, fmt_of(l, "format_qkv"), x,
                         fmt_of(l, "format_down"));
    }
    svg += fmt::format(R"(<text x="{}" y="245">layer {}</text>)", x + 4, i);
  }
  return svg + R"(<text x="10" y="215">qkv</text><text x="10" y="227">down</text></svg>)" + "\n";
}

}  // namespace jointnas::report
