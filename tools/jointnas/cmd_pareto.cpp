// `jointnas pareto CONFIG.yaml`: the joint search against the prune-then-quantize pipelines on the
// same model, data, table, kernels, finetune budget and evaluation, at several latency budgets;
// every point is exported, measured on the target device and evaluated; the report draws the
// measured Pareto fronts and computes the headline numbers from them (docs/pareto.md).
//
// Phases (each stage a child process, recorded in OUT/stages.json, skipped when done; a failed
// point is recorded and the others go on):
//   shared    importance, profile (the table), original model's bench / perplexity / tasks
//   arch 1    joint searches; architecture-only (bf16) searches; rule architectures
//   arch 2    sequential: formats applied to the architecture-only result; precision-only search
//   finetune  every point, the same distillation budget
//   eval      perplexity + KL to the original, tasks            (`parallel` at once)
//   bench     measured latency on the target device             (one at a time, nothing beside it)
//   report    OUT/report/: pareto.md, points.json, charts (PNG + SVG)
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "common.h"
#include "run_config.h"
#include "stage_runner.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/search/space.h"
#include "jointnas/report/pareto.h"
#include "jointnas/report/plot.h"

namespace jointnas::cli {
namespace {

namespace fs = std::filesystem;

struct ParetoFlags {
  std::string config, out;
  bool report_only = false;
  int parallel = 0;  // 0: the config's pareto.parallel (default 1)
};

// One model of the study.
struct Point {
  std::string id;      // directory name under points/
  std::string method;  // joint | arch_only | seq_<format> | seq_mix | quant_<format> | depth_only | original
  std::string family;  // joint | sequential | quant_only | depth_only | original
  std::string budget;  // "0.5x" ("" for budget-free points)
  double rel = 0;      // the budget as a fraction of the dense model (0: none)
  int64_t seed = 0;
  bool front_seed = true;  // the seed the fronts are drawn from (the others show the spread)
};

double parse_rel(const std::string& b, const std::string& source) {
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(b.substr(0, b.size() - 1), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  JNAS_CHECK_CONFIG(!b.empty() && b.back() == 'x' && used + 1 == b.size() && v > 0 && v <= 1.5,
                    "{}: pareto budget '{}' must be a fraction of the dense model's latency such as 0.5x", source, b);
  return v;
}

std::vector<std::string> str_list(const RunConfig& rc, const Json& o, const char* key, std::vector<std::string> dflt) {
  if (!o.contains(key)) return dflt;
  JNAS_CHECK_CONFIG(o[key].is_array(), "{}: pareto.{} must be a list", rc.source, key);
  std::vector<std::string> v;
  for (const Json& e : o[key]) {
    JNAS_CHECK_CONFIG(e.is_string() || e.is_number(), "{}: pareto.{} entries must be strings or numbers", rc.source, key);
    v.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  }
  return v;
}

struct Study {
  RunConfig rc;
  std::string out, model, space, device, target, threads, calib, train, eval_text, table;
  Json wl, imp, prof, se, ft, ev, par;
  std::vector<std::string> budgets, methods, seq_formats, quant_formats, seed_budgets;
  std::vector<int64_t> seeds;
  std::vector<std::string> tasks;
  int parallel = 1;
  bool keep_models = true;
  int auto_budgets = 0;  // budgets: auto -> this many, spread over what the space can reach
  std::vector<Point> points;

  std::string pdir(const Point& p) const { return out + "/points/" + p.id; }
  std::string permuted() const { return out + "/permuted"; }
};

std::string fmt_rel(double r) { return fmt::format("{:g}x", r); }

Study load_study(const ParetoFlags& f) {
  Study s;
  s.rc = load_run_config(f.config);
  const RunConfig& rc = s.rc;
  JNAS_CHECK_CONFIG(rc.j.contains("pareto"), "{}: `jointnas pareto` needs a 'pareto' section (budgets, methods, ...)",
                    rc.source);
  s.out = !f.out.empty() ? f.out : rc.path(rc.str(rc.j, "run_dir", "runs/" + fs::path(f.config).stem().string()));
  s.model = rc.path(rc.str(rc.j, "model", ""));
  s.space = rc.path(rc.str(rc.j, "search_space", ""));
  s.device = rc.str(rc.j, "device", "cpu");
  s.target = rc.str(rc.j, "target_device", s.device);
  JNAS_CHECK_CONFIG(s.target == "cpu" || s.target == "cuda", "{}: target_device must be cpu or cuda", rc.source);
  s.threads = rc.num(rc.j, "threads", "1");
  const Json& data = rc.section("data");
  s.calib = rc.path(rc.str(data, "calibration", ""));
  s.train = rc.path(rc.str(data, "train", rc.str(data, "calibration", "")));
  JNAS_CHECK_CONFIG(data.contains("eval"), "{}: data.eval (the perplexity text) is required by `jointnas pareto`", rc.source);
  s.eval_text = rc.path(rc.str(data, "eval", ""));
  s.wl = rc.section("workload");
  s.imp = rc.section("importance");
  s.prof = rc.section("profile");
  s.se = rc.section("search");
  s.ft = rc.section("finetune");
  s.ev = rc.section("eval");
  s.par = rc.section("pareto");
  s.table = rc.j.contains("table") ? rc.path(rc.str(rc.j, "table", "")) : s.out + "/table.json";
  if (!s.par.contains("budgets") || (s.par["budgets"].is_string() && s.par["budgets"] == "auto")) {
    s.auto_budgets = static_cast<int>(rc.integer(s.par, "budget_count", 6, 2, 40));
  } else {
    s.budgets = str_list(rc, s.par, "budgets", {});
    JNAS_CHECK_CONFIG(!s.budgets.empty(), "{}: pareto.budgets is empty", rc.source);
    for (auto& b : s.budgets) b = fmt_rel(parse_rel(b, rc.source));  // one spelling: the point ids use it
  }
  s.methods = str_list(rc, s.par, "methods", {"joint", "sequential", "quant_only", "depth_only"});
  for (const auto& m : s.methods) {
    JNAS_CHECK_CONFIG(m == "joint" || m == "sequential" || m == "quant_only" || m == "depth_only",
                      "{}: pareto.methods: unknown '{}' (joint, sequential, quant_only, depth_only)", rc.source, m);
  }
  // The formats of the baselines: by default those of the list that the space offers on the
  // target device; named ones must be in it.
  std::set<std::string> offered;
  {
    const model::Checkpoint ck = model::load_checkpoint(s.model);
    const search::SearchSpace sp = search::SearchSpace::from_yaml_file(s.space, ck.config, s.target);
    // A format every searched slot offers (slots with one choice keep it: `arch --formats`
    // leaves them alone).
    bool first = true;
    for (const auto& l : sp.layers) {
      for (const auto& f : l.formats) {
        if (f.size() < 2) continue;
        std::set<std::string> here(f.begin(), f.end());
        if (first) {
          offered = here;
          first = false;
        } else {
          std::erase_if(offered, [&](const std::string& x) { return !here.count(x); });
        }
      }
    }
  }
  auto formats = [&](const char* key, std::vector<std::string> dflt) {
    const bool given = s.par.contains(key);
    std::vector<std::string> v = str_list(rc, s.par, key, dflt);
    for (const auto& fm : v) {
      JNAS_CHECK_CONFIG(!given || offered.count(fm), "{}: pareto.{}: {} is not a format of {} on {} (it offers {})", rc.source,
                        key, fm, s.space, s.target, fmt::join(offered, ", "));
    }
    std::erase_if(v, [&](const std::string& fm) { return !offered.count(fm) || fm == "bf16"; });
    return v;
  };
  s.seq_formats = formats("sequential_formats", {"w8a8", "fp8_e4m3", "w4a16_g128"});
  s.quant_formats = formats("quant_formats", {"w8a16", "w4a16_g128", "w8a8", "fp8_e4m3"});
  for (const auto& sd : str_list(rc, s.par, "seeds", {rc.num(rc.j, "seed", "0")})) {
    try {
      s.seeds.push_back(std::stoll(sd));
    } catch (const std::exception&) {
      throw ConfigError(fmt::format("{}: pareto.seeds: '{}' is not an integer", rc.source, sd));
    }
  }
  JNAS_CHECK_CONFIG(!s.seeds.empty(), "{}: pareto.seeds is empty", rc.source);
  JNAS_CHECK_CONFIG(std::set<int64_t>(s.seeds.begin(), s.seeds.end()).size() == s.seeds.size(), "{}: pareto.seeds repeats a seed",
                    rc.source);
  JNAS_CHECK_CONFIG(std::set<std::string>(s.budgets.begin(), s.budgets.end()).size() == s.budgets.size(),
                    "{}: pareto.budgets repeats a budget ({})", rc.source, fmt::join(s.budgets, ", "));
  s.seed_budgets = str_list(rc, s.par, "seed_budgets", {});
  JNAS_CHECK_CONFIG(!s.auto_budgets || s.seed_budgets.empty(),
                    "{}: with budgets: auto the extra seeds run at the second and the second-to-last budget; drop "
                    "pareto.seed_budgets or list the budgets",
                    rc.source);
  for (auto& b : s.seed_budgets) {
    b = fmt_rel(parse_rel(b, rc.source));
    JNAS_CHECK_CONFIG(std::find(s.budgets.begin(), s.budgets.end(), b) != s.budgets.end(),
                      "{}: pareto.seed_budgets: {} is not one of pareto.budgets", rc.source, b);
  }
  s.parallel = f.parallel > 0 ? f.parallel : static_cast<int>(rc.integer(s.par, "parallel", 1, 1, 64));
  s.keep_models = s.par.value("keep_models", true);
  s.tasks = str_list(rc, s.ev, "tasks", {});
  return s;
}

// `budgets: auto`: n budgets spread evenly in log latency from 1.03x the fastest architecture the
// table predicts to 0.95x the dense model. The extra seeds run at the second and second-to-last.
void resolve_auto_budgets(Study& s, double fastest_rel) {
  const double hi = 0.95, lo = std::min(0.9 * hi, std::max(0.02, 1.03 * fastest_rel));
  s.budgets.clear();
  for (int i = 0; i < s.auto_budgets; ++i) {
    const double r = std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * i / (s.auto_budgets - 1));
    s.budgets.push_back(fmt_rel(std::round(r * 1000) / 1000));
  }
  if (s.seeds.size() > 1) s.seed_budgets = {s.budgets[1], s.budgets[s.budgets.size() - 2]};
}

void build_points(Study& s) {
  const RunConfig& rc = s.rc;
  s.points.clear();
  auto has = [&](const char* m) { return std::find(s.methods.begin(), s.methods.end(), m) != s.methods.end(); };
  s.points.push_back({"original", "original", "original", "", 0, s.seeds.front(), true});
  for (const std::string& b : s.budgets) {
    const double r = parse_rel(b, rc.source);
    if (has("joint")) {
      for (size_t k = 0; k < s.seeds.size(); ++k) {
        const bool extra = k > 0;
        if (extra && std::find(s.seed_budgets.begin(), s.seed_budgets.end(), b) == s.seed_budgets.end()) continue;
        s.points.push_back({fmt::format("joint-{}-s{}", b, s.seeds[k]), "joint", "joint", b, r, s.seeds[k], !extra});
      }
    }
    if (has("sequential")) {
      s.points.push_back({fmt::format("arch_only-{}", b), "arch_only", "sequential", b, r, s.seeds.front(), true});
      for (const auto& fm : s.seq_formats) {
        s.points.push_back({fmt::format("seq_{}-{}", fm, b), "seq_" + fm, "sequential", b, r, s.seeds.front(), true});
      }
      s.points.push_back({fmt::format("seq_mix-{}", b), "seq_mix", "sequential", b, r, s.seeds.front(), true});
    }
    if (has("depth_only")) s.points.push_back({fmt::format("depth_only-{}", b), "depth_only", "depth_only", b, r, s.seeds.front(), true});
  }
  if (has("quant_only")) {
    for (const auto& fm : s.quant_formats) s.points.push_back({"quant_" + fm, "quant_" + fm, "quant_only", "", 0, s.seeds.front(), true});
  }
}

// The depth-only baseline's space: the user's, with every depth from 1 block (ShortGPT drops
// as many blocks as the budget needs, not only as many as the joint space allows).
std::string depth_space(const Study& s) {
  YAML::Node root = YAML::LoadFile(s.space);
  YAML::Node sp = root["search_space"] ? root["search_space"] : root;
  YAML::Node d;
  d["min"] = 1;
  sp["depth"] = d;
  YAML::Emitter e;
  e << root;
  const std::string path = s.out + "/depth_only_space.yaml";
  write_file_atomic(path, std::string("# written by `jointnas pareto`: ") + s.space + " with depth from 1 block\n" + e.c_str() + "\n");
  return path;
}

// ---- stage arguments ----

std::vector<std::string> wl_args(const Study& s) {
  return {"--workload", s.rc.str(s.wl, "kind", "decode"), "--batch", s.rc.num(s.wl, "batch", "1"),
          "--context", s.rc.num(s.wl, "context", "512"), "--tokens", s.rc.num(s.wl, "tokens", "2048")};
}

std::vector<std::string> on(const std::string& device, const Study& s, std::vector<std::string> a) {
  a.insert(a.end(), {"--device", device, "--threads", s.threads});
  return a;
}

// A `search` stage (joint, architecture-only, precision-only) of point `p` into `dir`.
StageJob search_job(const Study& s, const Point& p, const std::string& name, const std::string& dir,
                    const std::string& budget, const std::vector<std::string>& extra) {
  const RunConfig& rc = s.rc;
  std::vector<std::string> a{"search", "--model", s.permuted(), "--importance", s.permuted() + "/importance.json",
                             "--space", s.space, "--table", s.table, "--text", s.train, "--out", dir, "--format", "json",
                             "--steps", rc.num(s.se, "steps", "100"), "--train-batch", rc.num(s.se, "batch", "4"),
                             "--seq-len", rc.num(s.se, "seq_len", "128"), "--lora-rank", rc.num(s.se, "lora_rank", "8"),
                             "--lr-arch", rc.num(s.se, "lr_arch", "0.05"), "--seed", std::to_string(p.seed),
                             "--checkpoint-every", rc.num(s.se, "checkpoint_every", "10"), "--target-device", s.target,
                             "--latency", budget};
  const auto knobs = search_knob_flags(s.se);
  a.insert(a.end(), knobs.begin(), knobs.end());
  const auto w = wl_args(s);
  a.insert(a.end(), w.begin(), w.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return {name, on(s.device, s, a), dir + ".log.json"};
}

// An `arch` stage (an architecture by rule) of point `p`.
StageJob arch_job(const Study& s, const Point& p, const std::string& name, const std::vector<std::string>& extra,
                  const std::string& space = "") {
  std::vector<std::string> a{"arch", "--model", s.permuted(), "--importance", s.permuted() + "/importance.json",
                             "--space", space.empty() ? s.space : space, "--table", s.table, "--target-device", s.target,
                             "--out", s.pdir(p) + "/arch.json", "--format", "json"};
  const auto w = wl_args(s);
  a.insert(a.end(), w.begin(), w.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return {name, on(s.device, s, a), s.pdir(p) + "/logs/arch.json"};
}

// Where the point's final arch.json is (a search writes it into its own directory).
std::string arch_path(const Study& s, const Point& p) {
  if (p.method == "joint" || p.method == "arch_only") return s.pdir(p) + "/search/arch.json";
  if (p.method == "seq_mix") return s.pdir(p) + "/search_formats/arch.json";
  return s.pdir(p) + "/arch.json";
}

std::string model_path(const Study& s, const Point& p) { return p.method == "original" ? s.model : s.pdir(p) + "/model"; }

// The architecture-only point a sequential point starts from.
std::string arch_only_id(const Point& p) { return "arch_only-" + p.budget; }

// ---- report ----

double num(const Json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
}

struct Measured {
  Point p;
  bool ok = false;
  std::string status;
  double ms = NAN, predicted_ms = NAN, ppl = NAN, kl = NAN, top1 = NAN, acc = NAN, mib = NAN, peak_mib = NAN, params = NAN;
  double acc_se = NAN;  // standard error of the mean accuracy (the tasks' own, combined)
  std::map<std::string, double> task_acc;
  Json arch;  // architecture (values)
};

double latency_of(const Study& s, const Json& bench) {
  const bool prefill = s.rc.str(s.wl, "kind", "decode") == "prefill";
  const char* key = prefill ? "prefill" : "decode";
  if (!bench.is_object() || !bench.contains(key) || !bench[key].is_array() || bench[key].empty()) return NAN;
  return num(bench[key][0], "ms");
}

std::vector<Measured> collect(const Study& s, const Stages& st) {
  std::vector<Measured> out;
  for (const Point& p : s.points) {
    Measured m;
    m.p = p;
    const std::string d = p.method == "original" ? s.out : s.pdir(p);
    const Json bench = read_json_or_null(d + "/logs/bench.json");
    const Json ppl = read_json_or_null(d + "/logs/ppl.json");
    const Json tasks = read_json_or_null(d + "/logs/tasks.json");
    m.ms = latency_of(s, bench);
    m.ppl = num(ppl, "ppl");
    if (ppl.is_object() && ppl.contains("teacher")) {
      m.kl = num(ppl["teacher"], "kl");
      m.top1 = num(ppl["teacher"], "top1_agreement");
    }
    if (tasks.is_object() && tasks.contains("results") && tasks["results"].is_array() && !tasks["results"].empty()) {
      double sum = 0, var = 0;
      for (const Json& r : tasks["results"]) {
        const double a = num(r, "acc"), se = num(r, "acc_stderr");
        m.task_acc[r.value("task", std::string("?"))] = a;
        sum += a;
        var += std::isfinite(se) ? se * se : NAN;
      }
      const double n = static_cast<double>(tasks["results"].size());
      m.acc = sum / n;
      m.acc_se = std::sqrt(var) / n;
    }
    if (p.method != "original") {
      const Json aj = read_json_or_null(arch_path(s, p));
      if (aj.is_object()) {
        m.arch = aj;
        m.predicted_ms = num(aj["predicted"], "latency_ms");
        m.mib = (num(aj["predicted"], "weight_bytes") + num(aj["predicted"], "kv_cache_bytes")) / 1048576.0;
        m.peak_mib = num(aj["predicted"], "peak_bytes") / 1048576.0;
        m.params = num(aj["predicted"], "params");
      }
    } else {
      const Json sj = read_json_or_null(s.out + "/logs/dense_cost.json");
      if (sj.is_object()) {
        m.predicted_ms = num(sj["predicted"], "latency_ms");
        m.mib = (num(sj["predicted"], "weight_bytes") + num(sj["predicted"], "kv_cache_bytes")) / 1048576.0;
        m.peak_mib = num(sj["predicted"], "peak_bytes") / 1048576.0;
        m.params = num(sj["predicted"], "params");
      }
    }
    m.ok = std::isfinite(m.ms) && std::isfinite(m.ppl);
    // The first failed stage of the point, if any.
    for (const auto& [name, rec] : st.json().items()) {
      if (name.rfind(p.id + "/", 0) == 0 && rec.is_object() && rec.value("failed", false)) {
        m.status = fmt::format("{} failed (exit {}){}", name.substr(p.id.size() + 1), rec.value("exit", -1),
                               rec.contains("error") && rec["error"].is_string() ? ": " + rec["error"].get<std::string>() : "");
        break;
      }
    }
    if (m.status.empty() && !m.ok && p.method != "seq_mix" && p.method.rfind("seq_", 0) == 0) {
      const std::string dep = arch_only_id(p) + "/search";
      if (st.json().contains(dep) && st.json()[dep].value("failed", false)) m.status = "skipped: " + dep + " failed";
    }
    if (m.status.empty()) m.status = m.ok ? "measured" : "not measured yet";
    out.push_back(std::move(m));
  }
  return out;
}

std::string label_of(const std::string& method) {
  if (method == "joint") return "joint search (architecture + precision)";
  if (method == "arch_only") return "architecture only (bf16)";
  if (method == "seq_mix") return "sequential: architecture, then per-layer precision";
  if (method.rfind("seq_", 0) == 0) return "sequential: architecture, then " + method.substr(4);
  if (method.rfind("quant_", 0) == 0) return "quantization only: " + method.substr(6);
  if (method == "depth_only") return "depth only (block influence)";
  return "original";
}

std::string f4(double v) { return std::isfinite(v) ? fmt::format("{:.4f}", v) : "-"; }
std::string f3(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "-"; }

// A method's front by loss `y` (ppl, or 1 - acc); only the fronts' seed.
std::vector<report::Point> points_of(const std::vector<Measured>& ms, const std::function<bool(const Measured&)>& pick,
                                     const std::function<double(const Measured&)>& y) {
  std::vector<report::Point> v;
  for (const auto& m : ms) {
    if (m.ok && m.p.front_seed && pick(m) && std::isfinite(y(m))) v.push_back({m.ms, y(m), m.p.id});
  }
  return v;
}

std::string arch_cell(const Json& aj, size_t l) {
  if (!aj.is_object() || !aj.contains("config")) return "-";
  const Json& specs = aj["config"]["jointnas_layer_specs"];
  if (!specs.is_array() || l >= specs.size()) return "-";
  const Json& sp = specs[l];
  if (sp.value("skip", false)) return "dropped";
  auto short_fmt = [&](const char* k) {
    std::string f = sp.value(k, std::string("bf16"));
    if (f == "w4a16_g128") return std::string("w4");
    if (f == "w8a16") return std::string("w8");
    if (f == "fp8_e4m3") return std::string("fp8");
    return f;
  };
  return fmt::format("{}h x {} / {} / {} {} {} {}", sp.value("num_attention_heads", 0), sp.value("head_dim", 0),
                     sp.value("intermediate_size", 0), short_fmt("format_qkv"), short_fmt("format_o"),
                     short_fmt("format_gate_up"), short_fmt("format_down"));
}

void write_report(const Study& s, const Stages& st) {
  const std::string rd = s.out + "/report";
  fs::create_directories(rd);
  const std::vector<Measured> ms = collect(s, st);
  const bool prefill = s.rc.str(s.wl, "kind", "decode") == "prefill";
  const std::string wl_name = prefill ? fmt::format("prefill of {} tokens, batch {}", s.rc.num(s.wl, "tokens", "2048"), s.rc.num(s.wl, "batch", "1"))
                                      : fmt::format("decode step at context {}, batch {}", s.rc.num(s.wl, "context", "512"), s.rc.num(s.wl, "batch", "1"));
  const Json table_meta = [&] {
    const Json t = read_json_or_null(s.table);
    return t.is_object() && t.contains("meta") ? t["meta"] : Json::object();
  }();
  const std::string dev_name = table_meta.value("device", s.target);

  // Fronts by perplexity and by task error.
  auto is_family = [](const char* fam) { return [fam](const Measured& m) { return m.p.family == fam; }; };
  auto ppl = [](const Measured& m) { return m.ppl; };
  auto err = [](const Measured& m) { return 1.0 - m.acc; };
  Json headline = Json::object();
  std::string md = fmt::format("# Pareto study: {}\n\n", s.model);
  md += fmt::format("Workload: {} on {} ({}). Budgets (latency, fraction of the dense model by the table): {}. "
                    "Seeds of the joint search: {} at {}.\n\n",
                    wl_name, s.target, dev_name, fmt::join(s.budgets, ", "), fmt::join(s.seeds, ", "),
                    s.seed_budgets.empty() ? std::string("no budget") : fmt::format("{}", fmt::join(s.seed_budgets, ", ")));
  md += fmt::format("Every point is a model exported by `jointnas finetune` ({} distillation steps each) and measured: latency "
                    "by `jointnas bench` on the target device, perplexity and KL(original || model) on {}{}. Nothing below is "
                    "predicted except the column so named.\n\n",
                    s.rc.num(s.ft, "steps", "50"), s.eval_text,
                    s.tasks.empty() ? "" : fmt::format(", accuracy on {}", fmt::join(s.tasks, ", ")));
  auto headline_for = [&](const char* what, const std::function<double(const Measured&)>& y, const char* unit, bool is_acc) {
    const auto joint = report::front(points_of(ms, is_family("joint"), y));
    const auto seq = report::front(points_of(ms, is_family("sequential"), y));
    const report::Comparison c = report::compare(joint, seq);
    Json h{{"joint_front", Json::array()}, {"sequential_front", Json::array()}};
    for (const auto& p : joint) h["joint_front"].push_back({{"id", p.id}, {"ms", p.x}, {"loss", p.y}});
    for (const auto& p : seq) h["sequential_front"].push_back({{"id", p.id}, {"ms", p.x}, {"loss", p.y}});
    std::string line = fmt::format("**{}.** ", what);
    if (c.speedup_max) {
      h["speedup_max"] = *c.speedup_max, h["speedup_median"] = *c.speedup_median;
      h["speedup_at_loss"] = c.speedup_at_y;
      const std::string at = is_acc ? fmt::format("{:.3f} accuracy", 1 - c.speedup_at_y) : fmt::format("{:.3f} {}", c.speedup_at_y, unit);
      if (*c.speedup_max >= 1) {
        line += fmt::format("At equal {}, the joint front is up to {:.2f}x faster than the best sequential front (at {}; "
                            "median {:.2f}x over the {} range both reach). ",
                            what, *c.speedup_max, at, *c.speedup_median, what);
      } else {
        line += fmt::format("At equal {}, the joint front is SLOWER than the best sequential front everywhere both reach "
                            "(at best {:.2f}x slower, at {}; median {:.2f}x): the joint method does not win here. ",
                            what, 1.0 / *c.speedup_max, at, *c.speedup_median);
      }
    } else {
      line += fmt::format("The {} ranges of the two fronts do not overlap: no speed-up at equal {}. ", what, what);
    }
    if (c.gain_max) {
      h["gain_max"] = *c.gain_max, h["gain_median"] = *c.gain_median, h["gain_at_ms"] = c.gain_at_x;
      const double g = *c.gain_max;
      const std::string u = is_acc ? "accuracy (fraction)" : unit;
      if (g > 0) {
        line += fmt::format("At equal measured latency, the joint front is better by up to {:.3f} {} (at {:.4f} ms; median "
                            "{:+.3f} over the latency range both cover).",
                            g, u, c.gain_at_x, *c.gain_median);
      } else {
        line += fmt::format("At equal measured latency, the joint front is WORSE everywhere both cover (by {:.3f} {} at "
                            "best, at {:.4f} ms; median {:+.3f}): the joint method does not win here.",
                            -g, u, c.gain_at_x, *c.gain_median);
      }
    } else {
      line += "The latency ranges of the two fronts do not overlap: no gain at equal latency.";
    }
    if (is_acc) {
      std::vector<double> se;
      for (const auto& m : ms) {
        if (std::isfinite(m.acc_se)) se.push_back(m.acc_se);
      }
      if (!se.empty()) {
        std::nth_element(se.begin(), se.begin() + static_cast<std::ptrdiff_t>(se.size() / 2), se.end());
        const double med = se[se.size() / 2];
        h["typical_stderr"] = med;
        line += fmt::format(" Each point's mean accuracy has a standard error of about {:.3f}: differences below it are noise.", med);
      }
    }
    headline[is_acc ? "accuracy" : "perplexity"] = h;
    return line + "\n\n";
  };
  md += "## Headline (computed from the measured fronts)\n\n";
  md += "Fronts: the non-dominated measured points of each family, interpolated linearly in (log latency, quality); no "
        "extrapolation. The sequential front is the best of every sequential variant (architecture only, each uniform "
        "format after it, the per-layer mix after it).\n\n";
  md += headline_for("perplexity", ppl, "perplexity", false);
  if (!s.tasks.empty()) md += headline_for("mean task accuracy", err, "", true);
  // The joint front against every family, by perplexity (the headline's comparison, extended).
  {
    const auto joint = report::front(points_of(ms, is_family("joint"), ppl));
    md += "The joint front against each family's front, by perplexity (speed-up: their latency / joint latency at equal "
          "perplexity; gain: their perplexity - joint perplexity at equal latency; - where the ranges do not overlap):\n\n"
          "| family | speed-up max | speed-up median | gain max | gain median |\n|---|---:|---:|---:|---:|\n";
    for (const char* fam : {"sequential", "depth_only", "quant_only"}) {
      const auto other = report::front(points_of(ms, is_family(fam), ppl));
      const report::Comparison c = report::compare(joint, other);
      auto o = [](const std::optional<double>& v, const char* f) { return v ? fmt::format(fmt::runtime(f), *v) : std::string("-"); };
      md += fmt::format("| {} | {} | {} | {} | {} |\n", fam, o(c.speedup_max, "{:.2f}x"), o(c.speedup_median, "{:.2f}x"),
                        o(c.gain_max, "{:+.3f}"), o(c.gain_median, "{:+.3f}"));
    }
    md += "\n";
  }

  // All points.
  md += "## Every point\n\n| point | method | budget | measured ms | predicted ms | measured / predicted | weights + KV MiB "
        "(predicted) | peak MiB (predicted) | params | perplexity | KL | top-1 agree | mean acc | status |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  Json pj = Json::array();
  for (const auto& m : ms) {
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m.p.id, label_of(m.p.method),
                      m.p.budget.empty() ? "-" : m.p.budget, f4(m.ms), f4(m.predicted_ms),
                      std::isfinite(m.ms) && std::isfinite(m.predicted_ms) ? f3(m.ms / m.predicted_ms) : "-", f3(m.mib),
                      f3(m.peak_mib),
                      std::isfinite(m.params) ? fmt::format("{:.0f}", m.params) : "-", f3(m.ppl), f4(m.kl), f3(m.top1),
                      f3(m.acc), m.status);
    Json e{{"id", m.p.id}, {"method", m.p.method}, {"family", m.p.family}, {"budget", m.p.budget}, {"seed", m.p.seed},
           {"front_seed", m.p.front_seed}, {"status", m.status}};
    auto put = [&](const char* k, double v) { e[k] = std::isfinite(v) ? Json(v) : Json(nullptr); };
    put("measured_ms", m.ms), put("predicted_ms", m.predicted_ms), put("ppl", m.ppl), put("kl", m.kl), put("top1", m.top1);
    put("mean_acc", m.acc), put("weights_kv_mib_predicted", m.mib), put("peak_mib_predicted", m.peak_mib);
    put("params", m.params);
    e["task_acc"] = m.task_acc;
    if (m.arch.is_object()) e["architecture"] = m.arch.value("architecture", Json::object());
    pj.push_back(std::move(e));
  }

  // Points of identical architecture (a budget the repair lands on twice, a rule that gives the
  // same depth) are repeat measurements of one model: their spread is the latency noise floor.
  {
    std::map<std::string, std::vector<const Measured*>> same;
    for (const auto& m : ms) {
      if (m.ok && m.arch.is_object() && m.arch.contains("architecture")) same[m.arch["architecture"].dump()].push_back(&m);
    }
    std::string rows;
    double worst = 1;
    for (const auto& [k, v] : same) {
      if (v.size() < 2) continue;
      double lo = INFINITY, hi = 0;
      std::vector<std::string> ids;
      for (const auto* m : v) lo = std::min(lo, m->ms), hi = std::max(hi, m->ms), ids.push_back(fmt::format("{} ({:.4f})", m->p.id, m->ms));
      worst = std::max(worst, hi / lo);
      rows += fmt::format("| {} | {:.2f}x |\n", fmt::join(ids, ", "), hi / lo);
    }
    if (!rows.empty()) {
      md += fmt::format("\n## Repeat measurements\n\nPoints with identical architectures are the same model measured again "
                        "(separate processes): their spread is the noise of the latency column. Largest: {:.2f}x{}.\n\n"
                        "| points (measured ms) | max / min |\n|---|---:|\n{}",
                        worst, worst > 1.05 ? " -- latency differences below this are not evidence" : "", rows);
      headline["latency_repeat_spread_max"] = worst;
    }
  }

  // Seeds.
  if (s.seeds.size() > 1 && !s.seed_budgets.empty()) {
    md += "\n## Spread of the joint search over seeds\n\n| budget | seed | measured ms | perplexity | mean acc |\n|---|---:|---:|---:|---:|\n";
    for (const auto& b : s.seed_budgets) {
      std::vector<double> lat, pp;
      for (const auto& m : ms) {
        if (m.p.method != "joint" || m.p.budget != b) continue;
        md += fmt::format("| {} | {} | {} | {} | {} |\n", b, m.p.seed, f4(m.ms), f3(m.ppl), f3(m.acc));
        if (m.ok) lat.push_back(m.ms), pp.push_back(m.ppl);
      }
      auto mean_sd = [](const std::vector<double>& v) {
        if (v.empty()) return std::string("-");
        const double mu = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
        double ss = 0;
        for (double x : v) ss += (x - mu) * (x - mu);
        return fmt::format("{:.4g} ± {:.2g}", mu, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0);
      };
      md += fmt::format("| {} | mean ± sd | {} | {} | |\n", b, mean_sd(lat), mean_sd(pp));
    }
  }

  // Architectures side by side.
  md += "\n## Architectures side by side\n\nPer layer: query heads x head size / MLP width / formats of qkv, o, gate_up, "
        "down (w4 = w4a16_g128, w8 = w8a16).\n";
  for (const auto& b : s.budgets) {
    std::vector<const Measured*> cols;
    for (const auto& m : ms) {
      if (m.p.budget == b && m.p.front_seed && m.arch.is_object() &&
          (m.p.method == "joint" || m.p.method == "arch_only" || m.p.method == "seq_mix" || m.p.method == "depth_only")) {
        cols.push_back(&m);
      }
    }
    if (cols.empty()) continue;
    md += fmt::format("\n### Budget {}\n\n| layer |", b);
    for (const auto* c : cols) md += fmt::format(" {} ({} ms, ppl {}) |", label_of(c->p.method), f4(c->ms), f3(c->ppl));
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
  }

  // The numbers first: a chart that fails to draw loses nothing.
  write_file_atomic(rd + "/points.json", pj.dump(1) + "\n");
  write_file_atomic(rd + "/headline.json", headline.dump(1) + "\n");
  write_file_atomic(rd + "/pareto.md", md);

  // Charts.
  std::vector<std::string> charts;
  auto chart = [&](const std::string& stem, const std::string& ylabel, const std::function<double(const Measured&)>& y,
                   bool higher_is_better) {
    report::Chart c;
    c.title = fmt::format("{}: {} against measured latency", fs::path(s.model).filename().string(), ylabel);
    c.notes = {fmt::format("{} on {}; lines: each method's front (its non-dominated points)", wl_name, dev_name)};
    c.x_label = fmt::format("{} latency on {}, measured (ms)", prefill ? "prefill" : "decode step", dev_name);
    c.y_label = ylabel;
    int style = 0;
    std::vector<std::string> order{"joint", "arch_only"};
    for (const auto& f : s.seq_formats) order.push_back("seq_" + f);
    order.push_back("seq_mix");
    order.push_back("depth_only");
    for (const std::string& method : order) {
      report::Series se{label_of(method), {}, {}, true, true, style++};
      for (const auto& m : ms) {
        if (m.p.method == method && m.ok && m.p.front_seed && std::isfinite(y(m))) se.x.push_back(m.ms), se.y.push_back(y(m));
      }
      if (se.x.empty()) continue;
      // The points, and under them the method's front (lower is better, or higher for accuracy).
      se.line = false;
      c.series.push_back(se);
      std::vector<report::Point> pts;
      for (size_t i = 0; i < se.x.size(); ++i) pts.push_back({se.x[i], higher_is_better ? -se.y[i] : se.y[i], ""});
      report::Series fr{"", {}, {}, true, false, se.style};
      fr.markers = false;
      for (const auto& p : report::front(pts)) fr.x.push_back(p.x), fr.y.push_back(higher_is_better ? -p.y : p.y);
      c.series.push_back(fr);
    }
    report::Series q{"quantization only (uniform formats)", {}, {}, false, true, style++};
    report::Series o{"original (bf16)", {}, {}, false, true, style++};
    for (const auto& m : ms) {
      if (!m.ok || !std::isfinite(y(m))) continue;
      if (m.p.family == "quant_only") q.x.push_back(m.ms), q.y.push_back(y(m));
      if (m.p.family == "original") o.x.push_back(m.ms), o.y.push_back(y(m));
    }
    if (!q.x.empty()) c.series.push_back(q);
    if (!o.x.empty()) c.series.push_back(o);
    if (c.series.empty()) return;
    if (!report::plotting_available()) {
      JNAS_LOG_WARN("[pareto] no PLplot in this build: {}.png/.svg not drawn (run `jointnas pareto CONFIG --report-only` "
                    "where PLplot is installed)", stem);
      return;
    }
    report::plot_chart(c, rd + "/" + stem);
    charts.push_back(stem);
  };
  chart("pareto_ppl", "perplexity", ppl, false);
  chart("pareto_kl", "KL(original || model), nats per token", [](const Measured& m) { return m.kl; }, false);
  if (!s.tasks.empty()) chart("pareto_acc", "mean task accuracy", [](const Measured& m) { return m.acc; }, true);
  md += "\n## Charts\n\n";
  if (charts.empty()) md += "Not drawn in this build (no PLplot); `jointnas pareto CONFIG --report-only` draws them.\n";
  for (const auto& c : charts) md += fmt::format("![{0}]({0}.png) ([SVG]({0}.svg))\n\n", c);

  // Wall time per stage kind.
  std::map<std::string, double> wall;
  for (const auto& [name, rec] : st.json().items()) {
    if (!rec.is_object() || !rec.contains("seconds")) continue;
    const auto slash = name.rfind('/');
    wall[slash == std::string::npos ? name : name.substr(slash + 1)] += rec.value("seconds", 0.0);
  }
  md += "## Wall time by stage (seconds, summed over points; parallel stages overlap)\n\n| stage | seconds |\n|---|---:|\n";
  for (const auto& [k, v] : wall) md += fmt::format("| {} | {:.0f} |\n", k, v);

  write_file_atomic(rd + "/pareto.md", md);  // again, now with the charts and the wall times
  std::cout << md << fmt::format("\nwrote {0}/pareto.md, points.json, headline.json{1}\n", rd,
                                 charts.empty() ? "" : fmt::format(" and {}.{{png,svg}}", fmt::join(charts, ", ")));
}

// ---- the study ----

void run(const ParetoFlags& f) {
  Study s = load_study(f);
  const auto& interrupt = install_interrupt_handler();
  std::error_code ec;
  fs::create_directories(fs::path(s.out) / "logs", ec);
  JNAS_CHECK_IO(!ec, "cannot create the study directory {}: {}", s.out, ec.message());
  Stages st(s.out + "/stages.json", interrupt);
  const std::string cfg_text = read_text_file(f.config);
  if (st.json().contains("config")) {
    JNAS_CHECK_CONFIG(st.json()["config"] == cfg_text,
                      "{} was started with another config; use a new directory (--out) or delete it", s.out);
  }
  if (s.auto_budgets && st.json().contains("budgets")) {
    s.budgets = st.json()["budgets"].get<std::vector<std::string>>();
    s.seed_budgets = st.json().value("seed_budgets", std::vector<std::string>{});
  }
  if (f.report_only) {
    JNAS_CHECK_IO(!s.budgets.empty(), "{}: no budgets resolved yet (budgets: auto); run the study first", s.out);
    build_points(s);
    write_report(s, st);
    return;
  }
  st.json()["config"] = cfg_text;
  st.save();
  const RunConfig& rc = s.rc;

  // Shared: importance, the table (on the target device, alone), the dense model's cost.
  st.run({"importance", on(s.device, s, {"importance", "--model", s.model, "--calib", s.calib, "--out", s.permuted(),
                                         "--windows", rc.num(s.imp, "windows", "16"), "--seq-len", rc.num(s.imp, "seq_len", "128")}),
          s.out + "/logs/importance.json"});
  if (!rc.j.contains("table")) {
    std::vector<std::string> a{"profile", "--config", s.permuted() + "/config.json", "--space", s.space, "--out", s.table,
                               "--repeats", rc.num(s.prof, "repeats", "7")};
    const auto w = wl_args(s);
    a.insert(a.end(), w.begin(), w.end());
    if (s.prof.contains("calibrate")) a.insert(a.end(), {"--calibrate", rc.num(s.prof, "calibrate", "0"), "--seed", rc.num(rc.j, "seed", "0")});
    st.run({"profile", on(s.target, s, a), s.out + "/logs/profile.json"});
  }
  {
    Point dense{"original", "original", "original", "", 0, 0, true};
    StageJob j = arch_job(s, dense, "dense_cost", {});
    auto it = std::find(j.args.begin(), j.args.end(), "--out");
    *(it + 1) = s.out + "/logs/dense_arch.json";
    j.log = s.out + "/logs/dense_cost.json";
    st.run(j);
  }

  if (s.budgets.empty()) {
    Point dense{"original", "original", "original", "", 0, 0, true};
    StageJob j = arch_job(s, dense, "fastest_cost", {"--fastest"});
    auto it = std::find(j.args.begin(), j.args.end(), "--out");
    *(it + 1) = s.out + "/logs/fastest_arch.json";
    j.log = s.out + "/logs/fastest_cost.json";
    st.run(j);
    const Json fc = read_json_file(j.log);
    const double fastest = fc["predicted"].value("latency_ms", 0.0), dense_ms = fc["dense"].value("latency_ms", 0.0);
    JNAS_CHECK_IO(fastest > 0 && dense_ms > 0, "{}: no predicted latencies", j.log);
    resolve_auto_budgets(s, fastest / dense_ms);
    st.json()["budgets"] = s.budgets;
    st.json()["seed_budgets"] = s.seed_budgets;
    st.save();
    JNAS_LOG_INFO("[pareto] budgets: auto -> {} (the fastest architecture predicts {:.3f}x of the dense model)",
                  fmt::join(s.budgets, ", "), fastest / dense_ms);
  }
  build_points(s);
  for (const Point& p : s.points) {
    if (p.method != "original") fs::create_directories(fs::path(s.pdir(p)) / "logs");
  }
  JNAS_LOG_INFO("[pareto] {} points ({} budgets), {} at once; study directory {}", s.points.size(), s.budgets.size(),
                s.parallel, s.out);
  const std::string dspace = depth_space(s);
  // Architectures, first round: joint and architecture-only searches, rule architectures.
  std::vector<StageJob> round1, round2, finetunes, evals, benches;
  for (const Point& p : s.points) {
    const std::string d = s.pdir(p);
    if (p.method == "joint") {
      round1.push_back(search_job(s, p, p.id + "/search", d + "/search", p.budget, {}));
    } else if (p.method == "arch_only") {
      round1.push_back(search_job(s, p, p.id + "/search", d + "/search", p.budget, {"--formats", "bf16"}));
    } else if (p.method == "seq_mix") {
      // Half the compression (in log latency) by the architecture, the rest by precision.
      round1.push_back(search_job(s, p, p.id + "/search_arch", d + "/search_arch", fmt_rel(std::sqrt(p.rel)), {"--formats", "bf16"}));
      round2.push_back(search_job(s, p, p.id + "/search_formats", d + "/search_formats", p.budget,
                                  {"--fix-arch", d + "/search_arch/arch.json", "--clamp-budget"}));
    } else if (p.method.rfind("seq_", 0) == 0) {
      round2.push_back(arch_job(s, p, p.id + "/arch",
                                {"--from", s.out + "/points/" + arch_only_id(p) + "/search/arch.json", "--formats",
                                 p.method.substr(4)}));
    } else if (p.method.rfind("quant_", 0) == 0) {
      round1.push_back(arch_job(s, p, p.id + "/arch", {"--formats", p.method.substr(6)}));
    } else if (p.method == "depth_only") {
      round1.push_back(arch_job(s, p, p.id + "/arch", {"--latency", p.budget, "--fit-depth"}, dspace));
    }
    if (p.method == "original") continue;
    finetunes.push_back({p.id + "/finetune",
                         on(s.device, s,
                            {"finetune", "--model", s.permuted(), "--space", p.method == "depth_only" ? dspace : s.space, "--arch", arch_path(s, p), "--out",
                             d + "/model", "--text", s.train, "--steps", rc.num(s.ft, "steps", "50"), "--train-batch",
                             rc.num(s.ft, "batch", "4"), "--seq-len", rc.num(s.ft, "seq_len", "128"), "--seed",
                             std::to_string(p.seed), "--target-device", s.target, "--format", "json"}),
                         d + "/logs/finetune.json"});
  }
  for (const Point& p : s.points) {
    const std::string d = p.method == "original" ? s.out : s.pdir(p);
    const std::string prefix = p.method == "original" ? "original" : p.id;
    evals.push_back({prefix + "/ppl",
                     on(s.device, s,
                        {"eval", "ppl", "--model", model_path(s, p), "--text", s.eval_text, "--teacher", s.model,
                         "--max-windows", rc.num(s.ev, "max_windows", "64"), "--window", rc.num(s.ev, "window", "257"),
                         "--format", "json"}),
                     d + "/logs/ppl.json"});
    if (!s.tasks.empty()) {
      std::vector<std::string> a{"eval", "tasks", "--model", model_path(s, p), "--tasks", fmt::format("{}", fmt::join(s.tasks, ",")),
                                 "--limit", rc.num(s.ev, "task_limit", "0"), "--format", "json"};
      if (s.ev.contains("task_dir")) a.insert(a.end(), {"--task-dir", rc.path(rc.str(s.ev, "task_dir", ""))});
      if (s.ev.contains("task_data")) a.insert(a.end(), {"--data-dir", rc.path(rc.str(s.ev, "task_data", ""))});
      evals.push_back({prefix + "/tasks", on(s.device, s, a), d + "/logs/tasks.json"});
    }
    std::vector<std::string> b{"bench", "--model", model_path(s, p), "--format", "json", "--repeats",
                               rc.num(s.ev, "bench_repeats", "30"), "--batch", rc.num(s.wl, "batch", "1"), "--contexts",
                               rc.num(s.wl, "context", "512")};
    if (rc.str(s.wl, "kind", "decode") == "prefill") b.insert(b.end(), {"--prefill", rc.num(s.wl, "tokens", "2048")});
    benches.push_back({prefix + "/bench", on(s.target, s, b), d + "/logs/bench.json"});
  }
  // A point whose architecture failed skips the stages after it (they would fail the same way).
  auto drop_failed = [&](std::vector<StageJob>& jobs, const std::vector<std::string>& failed) {
    std::set<std::string> bad;
    for (const auto& n : failed) bad.insert(n.substr(0, n.find('/')));
    std::erase_if(jobs, [&](const StageJob& j) { return bad.count(j.name.substr(0, j.name.find('/'))) > 0; });
  };
  auto phase = [&](const char* name, std::vector<StageJob>& jobs, int parallel, std::vector<std::vector<StageJob>*> later) {
    JNAS_LOG_INFO("[pareto] {}: {} stages, {} at once", name, jobs.size(), parallel);
    const auto failed = st.run_all(jobs, parallel);
    for (auto* l : later) drop_failed(*l, failed);
  };
  phase("architectures, round 1", round1, s.parallel, {&round2, &finetunes, &evals, &benches});
  // Sequential points also depend on their architecture-only point.
  for (const Point& p : s.points) {
    if (p.method != "seq_mix" && p.method.rfind("seq_", 0) == 0 && !st.done(arch_only_id(p) + "/search")) {
      drop_failed(round2, {p.id + "/"});
      drop_failed(finetunes, {p.id + "/"});
      drop_failed(evals, {p.id + "/"});
      drop_failed(benches, {p.id + "/"});
    }
  }
  phase("architectures, round 2", round2, s.parallel, {&finetunes, &evals, &benches});
  phase("finetune", finetunes, s.parallel, {&evals, &benches});
  phase("evaluation", evals, s.parallel, {});
  phase("latency (one at a time)", benches, 1, {});
  if (!s.keep_models) {
    for (const Point& p : s.points) {
      if (p.method != "original" && st.done(p.id + "/bench") && st.done(p.id + "/ppl") &&
          (s.tasks.empty() || st.done(p.id + "/tasks"))) {
        for (const char* f : {"/model/model.safetensors"}) std::remove((s.pdir(p) + f).c_str());
      }
    }
  }
  write_report(s, st);
}

}  // namespace

void register_pareto(CLI::App& app) {
  auto f = std::make_shared<ParetoFlags>();
  auto* sub = app.add_subcommand("pareto", "Joint search vs prune-then-quantize baselines at several budgets; measured Pareto report");
  sub->add_option("config", f->config, "Run config YAML with a 'pareto' section (configs/runs/)")->required();
  sub->add_option("--out", f->out, "Study directory (default: run_dir of the config)");
  sub->add_flag("--report-only", f->report_only, "Only (re)write the report from what is measured (draws the charts here)");
  sub->add_option("--parallel", f->parallel, "Stages at once for search / finetune / eval (overrides pareto.parallel)")
      ->check(CLI::Range(1, 64));
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
