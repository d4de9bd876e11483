// The report of a Pareto study; see pareto_report.h.
#include "jointnas/report/pareto_report.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/log.h"
#include "jointnas/report/pareto.h"

namespace jointnas::report {
namespace {

using Pick = std::function<bool(const MeasuredPoint&)>;
using Value = std::function<double(const MeasuredPoint&)>;

std::string f4(double v) { return std::isfinite(v) ? fmt::format("{:.4f}", v) : "-"; }
std::string f3(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "-"; }

Pick in_family(const char* fam) {
  return [fam](const MeasuredPoint& m) { return m.family == fam; };
}

// A method's front by loss `y` (ppl, or 1 - acc); only the fronts' seed.
std::vector<Point> points_of(const std::vector<MeasuredPoint>& ms, const Pick& pick, const Value& y) {
  std::vector<Point> v;
  for (const auto& m : ms) {
    if (m.ok && m.front_seed && pick(m) && std::isfinite(y(m))) v.push_back({m.ms, y(m), m.id});
  }
  return v;
}

// The latency the joint method was asked to reach at most: its largest budget's share of the
// original's measured latency, or its slowest measured point if that is later; unbounded without
// a measured original or a budget given as a share.
double joint_reach_ms(const std::vector<MeasuredPoint>& ms) {
  double original = NAN, top = 0, slowest = 0;
  for (const auto& m : ms) {
    if (m.family == "original" && m.ok) original = m.ms;
    if (m.family != "joint") continue;
    if (m.ok) slowest = std::max(slowest, m.ms);
    char* end = nullptr;
    const double rel = std::strtod(m.budget.c_str(), &end);
    if (!m.budget.empty() && end && *end == 'x' && end[1] == 0 && std::isfinite(rel)) top = std::max(top, rel);
  }
  return original > 0 && top > 0 ? std::max(top * original, slowest) : INFINITY;
}

std::string speedup_words(const Comparison& c, const char* what, bool is_acc, const char* unit, Json& h) {
  if (!c.speedup_max) return fmt::format("The {} ranges of the two fronts do not overlap: no speed-up at equal {}. ", what, what);
  h["speedup_max"] = *c.speedup_max, h["speedup_median"] = *c.speedup_median;
  h["speedup_at_loss"] = c.speedup_at_y;
  const std::string at = is_acc ? fmt::format("{:.3f} accuracy", 1 - c.speedup_at_y) : fmt::format("{:.3f} {}", c.speedup_at_y, unit);
  if (*c.speedup_max >= 1) {
    return fmt::format("At equal {}, the joint front is up to {:.2f}x faster than the best sequential front (at {}; "
                       "median {:.2f}x over the {} range both reach). ",
                       what, *c.speedup_max, at, *c.speedup_median, what);
  }
  return fmt::format("At equal {}, the joint front is SLOWER than the best sequential front everywhere both reach "
                     "(at best {:.2f}x slower, at {}; median {:.2f}x): the joint method does not win here. ",
                     what, 1.0 / *c.speedup_max, at, *c.speedup_median);
}

std::string gain_words(const Comparison& c, bool is_acc, const char* unit, Json& h) {
  if (!c.gain_max) return "The latency ranges of the two fronts do not overlap: no gain at equal latency.";
  h["gain_max"] = *c.gain_max, h["gain_median"] = *c.gain_median, h["gain_at_ms"] = c.gain_at_x;
  const std::string u = is_acc ? "accuracy (fraction)" : unit;
  if (*c.gain_max > 0) {
    return fmt::format("At equal measured latency, the joint front is better by up to {:.3f} {} (at {:.4f} ms; median "
                       "{:+.3f} over the latency range both cover).",
                       *c.gain_max, u, c.gain_at_x, *c.gain_median);
  }
  if (*c.gain_max < 0) {
    return fmt::format("At equal measured latency, the joint front is WORSE everywhere both cover (by {:.3f} {} at "
                       "best, at {:.4f} ms; median {:+.3f}): the joint method does not win here.",
                       -*c.gain_max, u, c.gain_at_x, *c.gain_median);
  }
  return fmt::format("At equal measured latency, the joint front is nowhere better than the best sequential front "
                     "(equal at best, at {:.4f} ms; median {:+.3f} {} over the latency range both cover).",
                     c.gain_at_x, *c.gain_median, u);
}

// The joint front against the best sequential front by one quality measure.
std::string headline_for(const std::vector<MeasuredPoint>& ms, const char* what, const Value& y, const char* unit,
                         bool is_acc, Json& headline) {
  const auto joint = front(points_of(ms, in_family("joint"), y));
  const auto seq = front(points_of(ms, in_family("sequential"), y));
  const Comparison c = compare(joint, seq, 64, joint_reach_ms(ms));
  Json h{{"joint_front", Json::array()}, {"sequential_front", Json::array()}};
  for (const auto& p : joint) h["joint_front"].push_back({{"id", p.id}, {"ms", p.x}, {"loss", p.y}});
  for (const auto& p : seq) h["sequential_front"].push_back({{"id", p.id}, {"ms", p.x}, {"loss", p.y}});
  std::string line = fmt::format("**{}.** ", what) + speedup_words(c, what, is_acc, unit, h) + gain_words(c, is_acc, unit, h);
  if (is_acc) {
    std::vector<double> se;
    for (const auto& m : ms) {
      if (std::isfinite(m.acc_se)) se.push_back(m.acc_se);
    }
    if (!se.empty()) {
      std::nth_element(se.begin(), se.begin() + static_cast<std::ptrdiff_t>(se.size() / 2), se.end());
      h["typical_stderr"] = se[se.size() / 2];
      line += fmt::format(" Each point's mean accuracy has a standard error of about {:.3f}: differences below it are noise.",
                          se[se.size() / 2]);
    }
  }
  headline[is_acc ? "accuracy" : "perplexity"] = h;
  return line + "\n\n";
}

// The joint front against every family, by perplexity.
std::string family_table(const std::vector<MeasuredPoint>& ms, Json& headline) {
  const Value ppl = [](const MeasuredPoint& m) { return m.ppl; };
  const auto joint = front(points_of(ms, in_family("joint"), ppl));
  std::string md =
      "The joint front against each family's front, by perplexity (speed-up: their latency / joint latency at equal "
      "perplexity; gain: their perplexity - joint perplexity at equal latency; - where the ranges do not overlap):\n\n"
      "| family | speed-up max | speed-up median | gain max | gain median |\n|---|---:|---:|---:|---:|\n";
  Json fam = Json::object();
  for (const char* f : {"sequential", "depth_only", "quant_only", "llama_quantize"}) {
    const Comparison c = compare(joint, front(points_of(ms, in_family(f), ppl)), 64, joint_reach_ms(ms));
    auto o = [](const std::optional<double>& v, const char* spec) { return v ? fmt::format(fmt::runtime(spec), *v) : std::string("-"); };
    md += fmt::format("| {} | {} | {} | {} | {} |\n", f, o(c.speedup_max, "{:.2f}x"), o(c.speedup_median, "{:.2f}x"),
                      o(c.gain_max, "{:+.3f}"), o(c.gain_median, "{:+.3f}"));
    auto put = [](const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); };
    fam[f] = {{"speedup_max", put(c.speedup_max)}, {"speedup_median", put(c.speedup_median)},
              {"gain_max", put(c.gain_max)}, {"gain_median", put(c.gain_median)}};
  }
  headline["perplexity_by_family"] = fam;
  return md + "\n";
}

// Each llama-quantize preset against the joint front at the preset's own measured latency (and
// at its perplexity): the question users of llama.cpp ask of a found model.
std::string presets_section(const std::vector<MeasuredPoint>& ms, Json& headline) {
  const Value ppl = [](const MeasuredPoint& m) { return m.ppl; };
  const auto joint = front(points_of(ms, in_family("joint"), ppl));
  std::string rows;
  Json pj = Json::object();
  for (const auto& m : ms) {
    if (m.family != "llama_quantize" || !m.ok || !std::isfinite(m.ppl)) continue;
    const std::string name = m.method.rfind("llama_quantize_", 0) == 0 ? m.method.substr(15) : m.method;
    const auto y = loss_at(joint, m.ms);
    const auto x = cost_at(joint, m.ppl);
    std::string verdict;
    if (y) {
      verdict = *y < m.ppl   ? fmt::format("joint better by {:.3f} perplexity", m.ppl - *y)
                : *y > m.ppl ? fmt::format("joint WORSE by {:.3f} perplexity", *y - m.ppl)
                             : "equal";
    } else if (!joint.empty()) {
      // Beyond the front: against its nearest end (no extrapolation).
      const Point& e = m.ms > joint.back().x ? joint.back() : joint.front();
      verdict = fmt::format("{} than every joint point; the nearest, {} at {:.4f} ms, has perplexity {:.3f} ({} by {:.3f})",
                            m.ms > e.x ? "slower" : "faster", e.id, e.x, e.y, e.y <= m.ppl ? "better" : "worse",
                            std::abs(e.y - m.ppl));
    } else {
      verdict = "no joint point measured";
    }
    rows += fmt::format("| {} | {:.4f} | {:.3f} | {} | {} | {} |\n", name, m.ms, m.ppl, y ? f3(*y) : "-",
                        x ? fmt::format("{:.2f}x", m.ms / *x) : "-", verdict);
    pj[name] = {{"measured_ms", m.ms},
                {"ppl", m.ppl},
                {"joint_ppl_at_equal_latency", y ? Json(*y) : Json(nullptr)},
                {"joint_speedup_at_equal_ppl", x ? Json(m.ms / *x) : Json(nullptr)}};
  }
  if (rows.empty()) return "";
  headline["llama_quantize_presets"] = pj;
  return "## Against llama-quantize's presets\n\nEach preset is the original model quantized by llama.cpp's own "
         "llama-quantize and measured like every point. The joint front (interpolated in log latency, never "
         "extrapolated) at the preset's measured latency, and its speed-up at the preset's perplexity (preset "
         "latency / joint latency; > 1: joint is faster):\n\n"
         "| preset | measured ms | perplexity | joint perplexity at equal latency | joint speed-up at equal "
         "perplexity | at equal latency |\n|---|---:|---:|---:|---:|---|\n" +
         rows + "\n";
}

std::string points_table(const std::vector<MeasuredPoint>& ms, Json& pj) {
  std::string md =
      "## Every point\n\n| point | method | budget | measured ms | predicted ms | measured / predicted | weights + KV MiB "
      "(predicted) | peak MiB (predicted) | params | perplexity | KL | top-1 agree | mean acc | status |\n"
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  pj = Json::array();
  for (const auto& m : ms) {
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m.id, method_label(m.method),
                      m.budget.empty() ? "-" : m.budget, f4(m.ms), f4(m.predicted_ms),
                      std::isfinite(m.ms) && std::isfinite(m.predicted_ms) ? f3(m.ms / m.predicted_ms) : "-", f3(m.mib),
                      f3(m.peak_mib), std::isfinite(m.params) ? fmt::format("{:.0f}", m.params) : "-", f3(m.ppl), f4(m.kl),
                      f3(m.top1), f3(m.acc), m.status);
    Json e{{"id", m.id}, {"method", m.method}, {"family", m.family}, {"budget", m.budget}, {"seed", m.seed},
           {"front_seed", m.front_seed}, {"status", m.status}};
    auto put = [&](const char* k, double v) { e[k] = std::isfinite(v) ? Json(v) : Json(nullptr); };
    put("measured_ms", m.ms), put("predicted_ms", m.predicted_ms), put("ppl", m.ppl), put("kl", m.kl), put("top1", m.top1);
    put("mean_acc", m.acc), put("weights_kv_mib_predicted", m.mib), put("peak_mib_predicted", m.peak_mib);
    put("params", m.params);
    e["task_acc"] = m.task_acc;
    if (m.arch.is_object()) e["architecture"] = m.arch.value("architecture", Json::object());
    pj.push_back(std::move(e));
  }
  return md;
}

// Points of identical architecture are repeat measurements of one model: their spread is the
// latency noise floor.
std::string repeats_section(const std::vector<MeasuredPoint>& ms, Json& headline) {
  std::map<std::string, std::vector<const MeasuredPoint*>> same;
  for (const auto& m : ms) {
    if (m.ok && m.arch.is_object() && m.arch.contains("architecture")) same[m.arch["architecture"].dump()].push_back(&m);
  }
  std::string rows;
  double worst = 1;
  for (const auto& [k, v] : same) {
    if (v.size() < 2) continue;
    double lo = INFINITY, hi = 0;
    std::vector<std::string> ids;
    for (const auto* m : v) lo = std::min(lo, m->ms), hi = std::max(hi, m->ms), ids.push_back(fmt::format("{} ({:.4f})", m->id, m->ms));
    worst = std::max(worst, hi / lo);
    rows += fmt::format("| {} | {:.2f}x |\n", fmt::join(ids, ", "), hi / lo);
  }
  if (rows.empty()) return "";
  headline["latency_repeat_spread_max"] = worst;
  return fmt::format("\n## Repeat measurements\n\nPoints with identical architectures are the same model measured again "
                     "(separate processes): their spread is the noise of the latency column. Largest: {:.2f}x{}.\n\n"
                     "| points (measured ms) | max / min |\n|---|---:|\n{}",
                     worst, worst > 1.05 ? " -- latency differences below this are not evidence" : "", rows);
}

std::string seeds_section(const StudyInfo& info, const std::vector<MeasuredPoint>& ms) {
  if (info.seeds.size() < 2 || info.seed_budgets.empty()) return "";
  std::string md = "\n## Spread of the joint search over seeds\n\n| budget | seed | measured ms | perplexity | mean acc |\n|---|---:|---:|---:|---:|\n";
  auto mean_sd = [](const std::vector<double>& v) {
    if (v.empty()) return std::string("-");
    const double mu = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    double ss = 0;
    for (double x : v) ss += (x - mu) * (x - mu);
    return fmt::format("{:.4g} ± {:.2g}", mu, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0);
  };
  for (const auto& b : info.seed_budgets) {
    std::vector<double> lat, pp;
    for (const auto& m : ms) {
      if (m.method != "joint" || m.budget != b) continue;
      md += fmt::format("| {} | {} | {} | {} | {} |\n", b, m.seed, f4(m.ms), f3(m.ppl), f3(m.acc));
      if (m.ok) lat.push_back(m.ms), pp.push_back(m.ppl);
    }
    md += fmt::format("| {} | mean ± sd | {} | {} | |\n", b, mean_sd(lat), mean_sd(pp));
  }
  return md;
}

std::string arch_cell(const Json& aj, size_t l) {
  if (!aj.is_object() || !aj.contains("config")) return "-";
  const Json& specs = aj["config"]["jointnas_layer_specs"];
  if (!specs.is_array() || l >= specs.size()) return "-";
  const Json& sp = specs[l];
  if (sp.value("skip", false)) return "dropped";
  auto short_fmt = [&](const char* k) {
    const std::string f = sp.value(k, std::string("bf16"));
    if (f == "w4a16_g128") return std::string("w4");
    if (f == "w8a16") return std::string("w8");
    if (f == "fp8_e4m3") return std::string("fp8");
    return f;
  };
  return fmt::format("{}h x {} / {} / {} {} {} {}", sp.value("num_attention_heads", 0), sp.value("head_dim", 0),
                     sp.value("intermediate_size", 0), short_fmt("format_qkv"), short_fmt("format_o"),
                     short_fmt("format_gate_up"), short_fmt("format_down"));
}

// One side-by-side table of the architectures `cols`, under a `title` heading.
std::string arch_table(const std::string& title, const std::vector<const MeasuredPoint*>& cols) {
  std::string md = fmt::format("\n### {}\n\n| layer |", title);
  for (const auto* c : cols) md += fmt::format(" {} ({} ms, ppl {}) |", method_label(c->method), f4(c->ms), f3(c->ppl));
  md += "\n|---:|";
  for (size_t i = 0; i < cols.size(); ++i) md += "---|";
  md += "\n";
  size_t layers = 0;
  for (const auto* c : cols) layers = std::max(layers, c->arch["config"]["jointnas_layer_specs"].size());
  for (size_t l = 0; l < layers; ++l) {
    md += fmt::format("| {} |", l);
    for (const auto* c : cols) md += " " + arch_cell(c->arch, l) + " |";
    md += "\n";
  }
  md += "| hidden |";
  for (const auto* c : cols) md += fmt::format(" {} |", c->arch["config"].value("hidden_size", 0));
  md += "\n";
  return md;
}

std::string architectures_section(const StudyInfo& info, const std::vector<MeasuredPoint>& ms) {
  std::string md = "\n## Architectures side by side\n\nPer layer: query heads x head size / MLP width / formats of qkv, o, "
                   "gate_up, down (w4 = w4a16_g128, w8 = w8a16).\n";
  for (const auto& b : info.budgets) {
    std::vector<const MeasuredPoint*> cols;
    for (const auto& m : ms) {
      if (m.budget == b && m.front_seed && m.arch.is_object() &&
          (m.method == "joint" || m.method == "arch_only" || m.method == "seq_mix" || m.method == "depth_only")) {
        cols.push_back(&m);
      }
    }
    if (cols.empty()) continue;
    md += arch_table(fmt::format("Budget {}", b), cols);
  }
  for (const auto& [b, ids] : info.matched) {
    std::vector<const MeasuredPoint*> cols;
    for (const auto& m : ms) {
      const bool baseline = std::find(ids.begin(), ids.end(), m.id) != ids.end();
      if (m.arch.is_object() && ((m.method == "joint" && m.budget == b) || baseline)) cols.push_back(&m);
    }
    if (!cols.empty()) md += arch_table(fmt::format("Matched point {} (against {})", b, fmt::join(ids, ", ")), cols);
  }
  return md;
}

// How much of its budget each joint point uses, by the table and as measured, and, below 97 % by
// the table, what the rest would have bought: the derivation's next larger architecture and its
// predicted cost (issue 22: the budget is used, or the report says why not).
std::string budget_use_section(const std::vector<MeasuredPoint>& ms) {
  double original_ms = NAN;
  for (const auto& m : ms) {
    if (m.family == "original") original_ms = m.ms;
  }
  std::string rows;
  for (const auto& m : ms) {
    if (m.method != "joint" || !m.arch.is_object()) continue;
    const Json& a = m.arch;
    const double budget = a.value("budget", Json::object()).value("latency_ms", 0.0);
    const double predicted = a.value("predicted", Json::object()).value("latency_ms", 0.0);
    if (!(budget > 0) || !(predicted > 0)) continue;
    const double use = predicted / budget;
    const Json sel = a.value("selection", Json::object());
    std::string next = "-";
    if (use < 0.97) {
      const Json nl = sel.is_object() ? sel.value("derivation", Json::object()).value("next_larger", Json()) : Json();
      const double nms = nl.is_object() ? nl.value("predicted", Json::object()).value("latency_ms", 0.0) : 0.0;
      next = nms > 0 ? fmt::format("{:.4f} ms ({:.1f} % of the budget)", nms, 100 * nms / budget)
                     : std::string("none within the derivation's reach");
    }
    const std::string measured = std::isfinite(m.ms) && std::isfinite(original_ms) && original_ms > 0
                                     ? fmt::format("{:.3f}x", m.ms / original_ms)
                                     : std::string("-");
    rows += fmt::format("| {} | {} | {:.4f} | {:.4f} | {:.1f} % | {} | {} | {} |\n", m.id, m.budget, budget, predicted,
                        100 * use, measured, sel.is_object() ? sel.value("winner", std::string("-")) : std::string("-"),
                        next);
  }
  if (rows.empty()) return "";
  return "\n## Budget use of the joint points\n\nBy the latency table (the budget is the table's, in ms) and as "
         "measured (the share of the original). Below 97 % the derivation names the next larger architecture of the "
         "space, the cheapest that scores better, and its predicted cost: the budget could not buy it.\n\n"
         "| point | budget | budget ms | predicted ms | use | measured / original | winner | next larger |\n"
         "|---|---|---:|---:|---:|---:|---|---|\n" +
         rows;
}

// One chart: every method's points with its front under them, the uniform formats and the original.
Chart chart_of(const StudyInfo& info, const std::vector<MeasuredPoint>& ms, const std::string& ylabel, const Value& y,
               bool higher_is_better) {
  Chart c;
  c.title = fmt::format("{}: {} against measured latency", info.model, ylabel);
  c.notes = {fmt::format("{} on {}; lines: each method's front (its non-dominated points)", info.workload, info.device_name)};
  c.x_label = fmt::format("{} latency on {}, measured (ms)", info.prefill ? "prefill" : "decode step", info.device_name);
  c.y_label = ylabel;
  int style = 0;
  std::vector<std::string> order{"joint", "arch_only"};
  for (const auto& f : info.seq_formats) order.push_back("seq_" + f);
  order.push_back("seq_mix");
  order.push_back("depth_only");
  for (const std::string& method : order) {
    Series se{method_label(method), {}, {}, false, true, style++};
    for (const auto& m : ms) {
      if (m.method == method && m.ok && m.front_seed && std::isfinite(y(m))) se.x.push_back(m.ms), se.y.push_back(y(m));
    }
    if (se.x.empty()) continue;
    c.series.push_back(se);
    std::vector<Point> pts;
    for (size_t i = 0; i < se.x.size(); ++i) pts.push_back({se.x[i], higher_is_better ? -se.y[i] : se.y[i], ""});
    Series fr{"", {}, {}, true, false, se.style};
    for (const auto& p : front(pts)) fr.x.push_back(p.x), fr.y.push_back(higher_is_better ? -p.y : p.y);
    c.series.push_back(fr);
  }
  Series q{"quantization only (uniform formats)", {}, {}, false, true, style++};
  Series lq{"llama-quantize presets", {}, {}, false, true, style++};
  Series o{info.target == "llama.cpp" ? "original (f16 GGUF)" : "original (bf16)", {}, {}, false, true, style++};
  for (const auto& m : ms) {
    if (!m.ok || !std::isfinite(y(m))) continue;
    if (m.family == "quant_only") q.x.push_back(m.ms), q.y.push_back(y(m));
    if (m.family == "llama_quantize") lq.x.push_back(m.ms), lq.y.push_back(y(m));
    if (m.family == "original") o.x.push_back(m.ms), o.y.push_back(y(m));
  }
  for (Series* se : {&q, &lq, &o}) {
    if (!se->x.empty()) c.series.push_back(*se);
  }
  return c;
}

}  // namespace

std::string method_label(const std::string& m) {
  if (m == "joint") return "joint search (architecture + precision)";
  if (m == "arch_only") return "architecture only (bf16)";
  if (m == "seq_mix") return "sequential: architecture, then per-layer precision";
  if (m.rfind("seq_", 0) == 0) return "sequential: architecture, then " + m.substr(4);
  if (m.rfind("quant_", 0) == 0) return "quantization only: " + m.substr(6);
  if (m.rfind("llama_quantize_", 0) == 0) return "llama-quantize " + m.substr(15) + " (baseline)";
  if (m == "depth_only") return "depth only (block influence)";
  return "original";
}

ParetoReport make_pareto_report(const StudyInfo& info, const std::vector<MeasuredPoint>& ms) {
  ParetoReport r;
  r.headline = Json::object();
  const Value ppl = [](const MeasuredPoint& m) { return m.ppl; };
  const Value err = [](const MeasuredPoint& m) { return 1.0 - m.acc; };
  std::string md = fmt::format("# Pareto study: {}\n\n", info.model);
  md += fmt::format("Workload: {} on {} ({}). Budgets (latency, fraction of the dense model by the table): {}. "
                    "Seeds of the joint search: {} at {}.\n\n",
                    info.workload, info.target, info.device_name, fmt::join(info.budgets, ", "), fmt::join(info.seeds, ", "),
                    info.seed_budgets.empty() ? std::string("no budget") : fmt::format("{}", fmt::join(info.seed_budgets, ", ")));
  if (!info.matched.empty()) {
    md += "Matched points: where a baseline landed between two joint points and was better than the line between them, "
          "the joint method was run again at that baseline's measured latency (docs/pareto.md):";
    for (const auto& [b, ids] : info.matched) md += fmt::format(" joint at {} against {};", b, fmt::join(ids, ", "));
    md.back() = '.';
    md += "\n\n";
  }
  md += fmt::format("Every point is a model exported by `jointnas finetune` ({} distillation steps each) and measured: latency "
                    "by `jointnas bench` on the target device, perplexity and KL(original || model) on {}{}. Nothing below is "
                    "predicted except the column so named.\n\n",
                    info.finetune_steps, info.eval_text,
                    info.tasks.empty() ? "" : fmt::format(", accuracy on {}", fmt::join(info.tasks, ", ")));
  md += "## Headline (computed from the measured fronts)\n\n";
  md += "Fronts: the non-dominated measured points of each family, read as staircases: at a latency a method delivers "
        "its best point no slower than it, and a quality costs it its fastest point at least as good (no model exists "
        "between two measured points). Latencies are compared from where both fronts have a point up to the joint "
        "method's largest budget. The sequential front is the best of every sequential variant (architecture only, each "
        "uniform format after it, the per-layer mix after it).\n\n";
  md += headline_for(ms, "perplexity", ppl, "perplexity", false, r.headline);
  if (!info.tasks.empty()) md += headline_for(ms, "mean task accuracy", err, "", true, r.headline);
  md += family_table(ms, r.headline);
  md += presets_section(ms, r.headline);
  md += points_table(ms, r.points);
  md += budget_use_section(ms);
  md += repeats_section(ms, r.headline);
  md += seeds_section(info, ms);
  md += architectures_section(info, ms);
  r.markdown = md;
  r.charts.emplace_back("pareto_ppl", chart_of(info, ms, "perplexity", ppl, false));
  r.charts.emplace_back("pareto_kl", chart_of(info, ms, "KL(original || model), nats per token",
                                              [](const MeasuredPoint& m) { return m.kl; }, false));
  if (!info.tasks.empty()) {
    r.charts.emplace_back("pareto_acc", chart_of(info, ms, "mean task accuracy", [](const MeasuredPoint& m) { return m.acc; }, true));
  }
  return r;
}

std::string write_pareto_report(const ParetoReport& r, const StudyInfo& info, const std::string& dir) {
  write_file_atomic(dir + "/points.json", r.points.dump(1) + "\n");
  write_file_atomic(dir + "/headline.json", r.headline.dump(1) + "\n");
  write_file_atomic(dir + "/pareto.md", r.markdown);
  std::vector<std::string> drawn;
  for (const auto& [stem, chart] : r.charts) {
    if (chart.series.empty()) continue;
    if (!plotting_available()) {
      JNAS_LOG_WARN("[pareto] no PLplot in this build: {}.png/.svg not drawn (run `jointnas pareto CONFIG --report-only` "
                    "where PLplot is installed)", stem);
      continue;
    }
    plot_chart(chart, dir + "/" + stem);
    drawn.push_back(stem);
  }
  std::string md = r.markdown + "\n## Charts\n\n";
  if (drawn.empty()) md += "Not drawn in this build (no PLplot); `jointnas pareto CONFIG --report-only` draws them.\n";
  for (const auto& c : drawn) md += fmt::format("![{0}]({0}.png) ([SVG]({0}.svg))\n\n", c);
  md += "## Wall time by stage (seconds, summed over points; parallel stages overlap)\n\n| stage | seconds |\n|---|---:|\n";
  for (const auto& [k, v] : info.stage_seconds) md += fmt::format("| {} | {:.0f} |\n", k, v);
  write_file_atomic(dir + "/pareto.md", md);  // again, now with the charts and the wall times
  return md;
}

}  // namespace jointnas::report
