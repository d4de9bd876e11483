// `jointnas pareto`; see study.h.
#include "jointnas/pipeline/study.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/dir_lock.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/pipeline/run.h"
#include "jointnas/report/run_summary.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

// Two files with the same bytes.
bool same_file_bytes(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  const auto na = fs::file_size(a, ea), nb = fs::file_size(b, eb);
  if (ea || eb || na != nb) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::vector<char> ba(1 << 20), bb(1 << 20);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
  }
  return fa.eof() && fb.eof();
}
double num(const Json& j, const char* k) { return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN; }

double latency_of(const Study& s, const Json& bench) {
  const char* key = s.prefill() ? "prefill" : "decode";
  if (!bench.is_object() || !bench.contains(key) || !bench[key].is_array() || bench[key].empty()) return NAN;
  return num(bench[key][0], "ms");
}

// The median over the bench rounds measured in `dir`/logs (NaN when none is).
double median_latency(const Study& s, const std::string& dir) {
  std::vector<double> v;
  for (int r = 1; r <= kBenchRounds; ++r) {
    const double ms = latency_of(s, read_json_or_null(dir + "/logs/bench" + bench_round_suffix(r) + ".json"));
    if (std::isfinite(ms)) v.push_back(ms);
  }
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The models a latency log measured, in order.
std::vector<std::string> measured_models(const Json& latency) {
  std::vector<std::string> out;
  if (!latency.is_object() || !latency.contains("models") || !latency["models"].is_array()) return out;
  for (const Json& m : latency["models"]) out.push_back(m.is_object() ? m.value("model", std::string()) : "");
  return out;
}

// A model's latency in the study's latency log (NaN when absent): its fastest round
// (latency_of). Every point ran in the same rounds, so a slow spell of the machine falls on all of
// them: the same architecture loaded three times measured 0.378-0.380 ms by its fastest round,
// 0.606-0.646x of the original by the median of per-round ratios (stories260K study of issue 22,
// docs/pareto.md).
double latency_in(const Study& s, const Json& latency, const std::string& model) {
  return pipeline::latency_of(latency, model, s.prefill()).value_or(NAN);
}

// Predicted cost columns from an arch.json's (or the dense cost log's) "predicted".
void put_predicted(const Json& predicted, report::MeasuredPoint& m) {
  m.predicted_ms = num(predicted, "latency_ms");
  m.mib = (num(predicted, "weight_bytes") + num(predicted, "kv_cache_bytes")) / 1048576.0;
  m.peak_mib = num(predicted, "peak_bytes") / 1048576.0;
  m.params = num(predicted, "params");
}

void put_tasks(const Json& tasks, report::MeasuredPoint& m) {
  if (!tasks.is_object() || !tasks.contains("results") || !tasks["results"].is_array() || tasks["results"].empty()) return;
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

// The first failed stage of the point, if any, else whether it is measured.
std::string status_of(const Study& s, const Stages& st, const Point& p, bool ok) {
  for (const auto& [name, rec] : st.json().items()) {
    if (name.rfind(p.id + "/", 0) == 0 && rec.is_object() && rec.value("failed", false)) {
      return fmt::format("{} failed (exit {}){}", name.substr(p.id.size() + 1), rec.value("exit", -1),
                         rec.contains("error") && rec["error"].is_string() ? ": " + rec["error"].get<std::string>() : "");
    }
  }
  if (!ok && p.method == Method::kSeqFormat) {
    const std::string dep = "arch_only-" + p.budget + "/search";
    if (st.json().contains(dep) && st.json()[dep].value("failed", false)) return "skipped: " + dep + " failed";
  }
  return ok ? "measured" : "not measured yet";
}

// Why an architecture does not meet the latency budget it was asked for ("" when it does): a
// sequential baseline whose structure leaves precision nothing to buy ends above its budget.
std::string over_budget_reason(const Json& arch) {
  // A search that held its candidates to the measured budget (docs/search.md, "Measured fit") is
  // judged by that measurement, not by the table: its architecture may predict above the table
  // budget because the target runs it faster than the table says.
  const Json sel = arch.value("selection", Json::object());
  if (sel.is_object() && sel.contains("measured_fit") && sel["measured_fit"].is_object()) {
    const Json c = sel["measured_fit"].value("candidates", Json::object()).value(sel.value("winner", ""), Json::object());
    if (!c.is_object() || c.contains("kept")) return "";
    return "cannot meet the budget: " + c.value("dropped", std::string("no candidate measured within it"));
  }
  const Json& b = arch.value("budget", Json::object());
  const double asked = arch.value("budget_clamped_from_ms", b.is_object() ? b.value("latency_ms", 0.0) : 0.0);
  const double predicted = arch.value("predicted", Json::object()).value("latency_ms", 0.0);
  if (asked <= 0 || predicted <= asked * (1 + 1e-6)) return "";
  return fmt::format("cannot meet the budget: predicted {:.4f} ms against {:.4f} ms", predicted, asked);
}

// A point whose architecture failed skips the stages after it (they would fail the same way).
void drop_failed(std::vector<StageJob>& jobs, const std::vector<std::string>& failed) {
  std::set<std::string> bad;
  for (const auto& n : failed) bad.insert(n.substr(0, n.find('/')));
  std::erase_if(jobs, [&](const StageJob& j) { return bad.count(j.name.substr(0, j.name.find('/'))) > 0; });
}

// The shared stages and the budgets (`budgets: auto` resolved once and recorded in stages.json).
void run_shared(Study& s, Stages& st) {
  for (const StageJob& j : shared_jobs(s)) st.run(j);
  st.run(cost_job(s, "dense_cost", false));
  if (!s.budgets.empty()) return;
  const StageJob fj = cost_job(s, "fastest_cost", true);
  st.run(fj);
  const Json fc = read_json_file(fj.log);
  const double fastest = fc["predicted"].value("latency_ms", 0.0), dense_ms = fc["dense"].value("latency_ms", 0.0);
  JNAS_CHECK_IO(fastest > 0 && dense_ms > 0, "{}: no predicted latencies", fj.log);
  resolve_auto_budgets(s, fastest / dense_ms);
  st.json()["budgets"] = s.budgets;
  st.json()["seed_budgets"] = s.seed_budgets;
  st.save();
  JNAS_LOG_INFO("[pareto] budgets: auto -> {} (the fastest architecture predicts {:.3f}x of the dense model)",
                fmt::join(s.budgets, ", "), fastest / dense_ms);
}

// The model each point's latency is read from: itself, or an earlier point's byte-identical model
// (kept in stages.json, since the weights may be gone by the time the report is drawn). Timing one
// model twice only measures the timing's jitter: in issue 22's studies the joint point and the
// depth-only point of a budget were often the same model, and 0.3 % between their two timings
// decided the sign of the headline against depth only.
std::string timed_as(const Stages& st, const std::string& model) {
  const Json& m = st.json().contains("same_model") ? st.json()["same_model"] : Json();
  return m.is_object() && m.contains(model) && m[model].is_string() ? m[model].get<std::string>() : model;
}

// The architectures, finetunes, evaluations and the one latency stage of every point (stages done
// before are skipped).
void run_points(const Study& s, Stages& st) {
  StudyJobs j = study_jobs(s);
  auto phase = [&](const char* name, std::vector<StageJob>& jobs, int64_t parallel, std::vector<std::vector<StageJob>*> later) {
    JNAS_LOG_INFO("[pareto] {}: {} stages, {} at once", name, jobs.size(), parallel);
    const auto failed = st.run_all(jobs, static_cast<int>(parallel));
    for (auto* l : later) drop_failed(*l, failed);
  };
  phase("architectures, round 1", j.round1, s.parallel, {&j.round2, &j.finetunes, &j.exports, &j.evals});
  // Sequential points also depend on their architecture-only point.
  for (const Point& p : s.points) {
    if (p.method == Method::kSeqFormat && !st.done("arch_only-" + p.budget + "/search")) {
      for (auto* l : {&j.round2, &j.finetunes, &j.exports, &j.evals}) drop_failed(*l, {p.id + "/"});
    }
  }
  phase("architectures, round 2", j.round2, s.parallel, {&j.finetunes, &j.exports, &j.evals});
  phase("finetune", j.finetunes, s.parallel, {&j.exports, &j.evals});
  if (!j.exports.empty()) phase("GGUF export", j.exports, s.parallel, {&j.evals});
  phase("evaluation", j.evals, s.parallel, {});
  // Latency: every distinct model, in one process and the same interleaved rounds.
  std::vector<std::string> models;
  Json same = st.json().contains("same_model") ? st.json()["same_model"] : Json::object();
  const std::string reference = s.latency_model(s.points.front());  // the original
  // A GGUF file names the model it was written from (jointnas.source_model), so two exports of one
  // model differ in bytes: the jointnas models beside them (POINT/model) are compared instead.
  auto same_as = [&](const std::string& a, const std::string& b) {
    if (!s.llamacpp()) return same_model(a, b);
    return same_model((fs::path(a).parent_path() / "model").string(), (fs::path(b).parent_path() / "model").string());
  };
  for (const Point& p : s.points) {
    if (const std::string ready = s.latency_ready_stage(p); !ready.empty() && !st.done(ready)) continue;
    const std::string m = s.latency_model(p);
    if (!same.contains(m) && p.method != Method::kOriginal) {
      for (const std::string& earlier : models) {
        if (earlier != reference && same_as(earlier, m)) {
          same[m] = earlier;
          JNAS_LOG_INFO("[pareto] {} is the same model as {}: timed once", m, earlier);
          break;
        }
      }
    }
    if (!same.contains(m)) models.push_back(m);
  }
  st.json()["same_model"] = same;
  st.save();
  const StageJob lj = latency_job(s, models);
  if (st.done(lj.name) && measured_models(read_json_or_null(lj.log)) != models) {
    st.json().erase(lj.name);  // points were added (or failed) since: measure them all again
  }
  std::vector<StageJob> lat = {lj};
  phase("latency (every point in one process, interleaved rounds)", lat, 1, {});
}

// Matched points (study_plan.h, matched_budgets) are decided from a complete measurement, in at
// most this many passes: adding points measures every point again, and on a noisy CPU the new
// measurement can put another baseline ahead of the line (stories260K, 2026-12-07: none was ahead
// in the first measurement, two by 1.8-2.3 % in the last).
constexpr int kMatchedPasses = 2;
constexpr size_t kMatchedMax = 6;

void run_phases(Study& s, Stages& st) {
  run_points(s, st);
  const std::string lat = "latency";
  // Each pass recorded in stages.json ("matched", "matched_passes"), so a resume reads them back.
  const bool matching = s.config.pareto.matched_points && s.has("joint");
  int passes = st.json().value("matched_passes", st.json().contains("matched") ? 1 : 0);
  while (matching && st.done(lat) && passes < kMatchedPasses && s.matched.size() < kMatchedMax) {
    double top = 0;
    for (const std::string& b : s.budgets) top = std::max(top, parse_rel(b, s.config.source));
    std::vector<MatchedBudget> more = matched_budgets(collect_points(s, st), top, 0.03, kMatchedMax - s.matched.size());
    // A baseline matched already is not matched again: its joint point was run.
    std::set<std::string> done;
    for (const MatchedBudget& m : s.matched) done.insert(m.baselines.begin(), m.baselines.end());
    std::erase_if(more, [&](const MatchedBudget& m) {
      return std::all_of(m.baselines.begin(), m.baselines.end(), [&](const std::string& b) { return done.count(b) > 0; });
    });
    s.matched.insert(s.matched.end(), more.begin(), more.end());
    st.json()["matched"] = to_json(s.matched);
    st.json()["matched_passes"] = ++passes;
    st.save();
    for (const MatchedBudget& m : more) {
      JNAS_LOG_INFO("[pareto] matched point (pass {}): joint at {} (where {} landed between the joint points, better "
                    "than the line between them)",
                    passes, m.budget, fmt::join(m.baselines, ", "));
    }
    if (more.empty()) break;
    build_points(s);
    for (const Point& p : s.points) {
      if (p.method != Method::kOriginal) fs::create_directories(fs::path(s.pdir(p)) / "logs");
    }
    run_points(s, st);  // their stages, then every point measured again in one process
  }
  if (s.config.pareto.keep_models || !st.done(lat)) return;
  for (const Point& p : s.points) {
    if (p.method != Method::kOriginal && st.done(p.id + "/ppl") &&
        (s.config.eval.tasks.empty() || st.done(p.id + "/tasks"))) {
      std::remove((s.pdir(p) + "/model/model.safetensors").c_str());
    }
  }
}

}  // namespace

bool same_model(const std::string& a, const std::string& b) {
  return same_file_bytes(a + "/config.json", b + "/config.json") &&
         same_file_bytes(a + "/model.safetensors", b + "/model.safetensors");
}

// How far over its budget the latency stage may measure a point before it is over budget.
constexpr double kMeasuredSlack = 0.02;

std::vector<report::MeasuredPoint> collect_points(const Study& s, const Stages& st) {
  std::vector<report::MeasuredPoint> out;
  const Json latency = read_json_or_null(s.out + "/logs/latency.json");
  double original_ms = NAN;
  std::map<std::string, double> ms_of;  // every point's measured latency, by id
  for (const Point& p : s.points) {
    ms_of[p.id] = latency_in(s, latency, timed_as(st, s.latency_model(p)));
    if (p.method == Method::kOriginal) original_ms = ms_of[p.id];
  }
  for (const Point& p : s.points) {
    report::MeasuredPoint m;
    m.id = p.id;
    m.method = p.method_name();
    m.family = family_name(p.family());
    m.budget = p.budget;
    m.seed = p.seed;
    m.front_seed = p.front_seed;
    const std::string d = p.method == Method::kOriginal ? s.out : s.pdir(p);
    m.ms = latency_in(s, latency, timed_as(st, s.latency_model(p)));
    if (!std::isfinite(m.ms)) m.ms = median_latency(s, d);  // a study measured per point
    const Json ppl = read_json_or_null(d + "/logs/ppl.json");
    m.ppl = num(ppl, "ppl");
    if (ppl.is_object() && ppl.contains("teacher")) {
      m.kl = num(ppl["teacher"], "kl");
      m.top1 = num(ppl["teacher"], "top1_agreement");
    }
    put_tasks(read_json_or_null(d + "/logs/tasks.json"), m);
    std::string over_budget;
    if (p.method != Method::kOriginal) {
      const Json aj = read_json_or_null(s.arch_path(p));
      if (aj.is_object()) {
        m.arch = aj;
        put_predicted(aj["predicted"], m);
        over_budget = over_budget_reason(aj);
      }
      // Whatever the table or a search's own timing said, a point the latency stage measures over
      // its budget is not a point of that budget (2 %: identical models measure within 0.5 % there).
      // A matched point's budget is its label (its baseline's share in the measurement that added
      // it, the budget its search was given) or its baseline's model as measured here, whichever is
      // larger. In the ref-17m CPU study of 2026-12-07 two matched points were byte-identical to
      // their baselines and read 0.369x against "0.359x"; in that of 2026-12-08 a w8a8 baseline
      // moved from 0.883x to 0.839x between two latency stages, and its matched point, 0.873x
      // against "0.883x", was called over.
      const double share = m.ms / original_ms;
      const auto base = ms_of.find(p.matched_to);
      const double rel = base != ms_of.end() && std::isfinite(base->second) ? std::max(p.rel, base->second / original_ms)
                                                                            : p.rel;
      if (over_budget.empty() && rel > 0 && std::isfinite(share) && share > rel * (1 + kMeasuredSlack)) {
        over_budget = fmt::format("over its budget: measures {:.3f}x of the original against {}", share, p.budget);
      }
    } else {
      const Json sj = read_json_or_null(s.out + "/logs/dense_cost.json");
      if (sj.is_object()) put_predicted(sj["predicted"], m);
    }
    m.ok = std::isfinite(m.ms) && std::isfinite(m.ppl);
    m.status = status_of(s, st, p, m.ok);
    if (!over_budget.empty()) {  // a point over its budget is not a point of that budget
      m.ok = false;
      m.status = over_budget;
    }
    out.push_back(std::move(m));
  }
  return out;
}

report::StudyInfo study_info(const Study& s, const Stages& st) {
  const RunConfig& c = s.config;
  report::StudyInfo info;
  info.model = fs::path(c.model.str()).filename().string();
  if (info.model.empty()) info.model = c.model;
  Json w = c.workload.to_json();
  info.workload = report::workload_words(w);
  info.prefill = s.prefill();
  info.target = c.target();
  const Json t = read_json_or_null(s.table());
  info.device_name = t.is_object() && t.contains("meta") ? t["meta"].value("device", info.target) : info.target;
  info.budgets = s.budgets;
  info.seed_budgets = s.seed_budgets;
  for (const MatchedBudget& m : s.matched) info.matched.push_back({m.budget, m.baselines});
  info.seq_formats = s.seq_formats;
  info.tasks = c.eval.tasks;
  info.seeds = s.seeds;
  info.finetune_steps = c.finetune.train.steps;
  info.eval_text = c.data.eval;
  for (const auto& [name, rec] : st.json().items()) {
    if (!rec.is_object() || !rec.contains("seconds")) continue;
    const auto slash = name.rfind('/');
    info.stage_seconds[slash == std::string::npos ? name : name.substr(slash + 1)] += rec.value("seconds", 0.0);
  }
  return info;
}

std::string run_study(Study s, const std::string& config_text, bool report_only, const std::atomic<bool>& interrupt) {
  // Issue 26: the study directory may not hold an input, and one study runs in it at a time.
  const RunConfig& c = s.config;
  check_output_separate(s.out, "run_dir",
                        {{c.model, "model"}, {c.search_space, "search_space"}, {c.data.calibration, "data.calibration"},
                         {c.data.train, "data.train"}, {c.data.eval, "data.eval"}});
  check_listable_path(c.model, "model");
  check_listable_path(s.out, "run_dir");
  const DirLock lock = DirLock::acquire(s.out, "jointnas pareto (" + c.source + ")");
  std::error_code ec;
  fs::create_directories(fs::path(s.out) / "logs", ec);
  JNAS_CHECK_IO(!ec, "cannot create the study directory {}: {}", s.out, ec.message());
  Stages st(s.out + "/stages.json", interrupt);
  if (st.json().contains("config") && st.json()["config"] != config_text) {
    // Only how many stages run at once may change between a study's runs: it changes no result.
    Json was = Json::object(), now = dump(c);
    try {
      was = dump(parse_run_config(st.json()["config"].get<std::string>(), c.source));
    } catch (const Error&) {
    }
    if (was.contains("pareto")) was["pareto"].erase("parallel");
    now["pareto"].erase("parallel");
    JNAS_CHECK_CONFIG(was == now,
                      "{} was started with another config (only pareto.parallel may change between its runs); use a "
                      "new directory (--out) or delete it", s.out);
    JNAS_LOG_INFO("[pareto] the config changed only in pareto.parallel: resuming {}", s.out);
  }
  if (s.budgets.empty() && st.json().contains("budgets")) {
    s.budgets = st.json()["budgets"].get<std::vector<std::string>>();
    s.seed_budgets = st.json().value("seed_budgets", std::vector<std::string>{});
  }
  if (st.json().contains("matched")) s.matched = matched_from_json(st.json()["matched"], s.out + "/stages.json");
  if (!report_only) {
    st.json()["config"] = config_text;
    st.save();
    run_shared(s, st);
    build_points(s);
    for (const Point& p : s.points) {
      if (p.method != Method::kOriginal) fs::create_directories(fs::path(s.pdir(p)) / "logs");
    }
    JNAS_LOG_INFO("[pareto] {} points ({} budgets), {} at once; study directory {}", s.points.size(), s.budgets.size(),
                  s.parallel, s.out);
    const int64_t cores = static_cast<int64_t>(std::thread::hardware_concurrency());
    if (s.config.device == "cpu" && cores > 0 && s.parallel * std::max<int64_t>(1, s.config.threads) > cores) {
      // Measured on ref-17m (2 cores): two searches of 2 threads each ran 10x slower per step than one alone.
      JNAS_LOG_WARN("[pareto] {} stages of {} threads on {} cores: CPU stages that oversubscribe the cores run many "
                    "times slower; set pareto.parallel to {} (or threads lower)",
                    s.parallel, s.config.threads, cores, std::max<int64_t>(1, cores / std::max<int64_t>(1, s.config.threads)));
    }
    write_file_atomic(s.depth_space(), depth_space_yaml(s.config.search_space));
    run_phases(s, st);
  } else {
    JNAS_CHECK_IO(!s.budgets.empty(), "{}: no budgets resolved yet (budgets: auto); run the study first", s.out);
    build_points(s);
  }
  const std::string rd = s.out + "/report";
  fs::create_directories(rd);
  const report::StudyInfo info = study_info(s, st);
  return report::write_pareto_report(report::make_pareto_report(info, collect_points(s, st)), info, rd);
}

}  // namespace jointnas::pipeline
