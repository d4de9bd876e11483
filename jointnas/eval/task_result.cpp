// Scoring, aggregation and the results JSON of a task (see task_result.h).
#include "jointnas/eval/task_result.h"

#include <cmath>

#include "jointnas/core/error.h"
#include "jointnas/eval/task_builtins.h"

namespace jointnas::eval {
namespace {

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

MetricItems items_of(const std::vector<const ItemResult*>& items, const std::string& m) {
  MetricItems out;
  for (const auto* it : items) {
    out.x.push_back(it->x.at(m));
    if (auto w = it->weight.find(m); w != it->weight.end()) out.weight.push_back(w->second);
  }
  return out;
}

}  // namespace

void score_items(const TaskConfig& cfg, const std::vector<Instance>& instances, TaskResult& r) {
  JNAS_CHECK_CONFIG(instances.size() == r.items.size(), "{} instances for {} results", instances.size(), r.items.size());
  for (size_t i = 0; i < instances.size(); ++i) {
    const Instance& in = instances[i];
    ItemResult& it = r.items[i];
    switch (cfg.output_type) {
      case OutputType::kMultipleChoice: {
        it.score = score_choices(in.choices, it.lls, in.golds);
        it.golds = in.golds;
        for (int64_t g : in.golds) r.gold_out_of_range += g == kGoldOutOfRange;
        it.x["acc"] = it.score.acc;
        it.x["acc_norm"] = it.score.acc_norm;
        it.x["acc_bytes"] = it.score.acc_bytes;
        break;
      }
      case OutputType::kLoglikelihood:
        it.x["perplexity"] = it.lls[0];
        it.x["acc"] = it.greedy[0] ? 1.0 : 0.0;
        break;
      case OutputType::kLoglikelihoodRolling: {
        if (!cfg.process_results.empty()) {
          for (const auto& [m, w] : builtin_process_results(cfg.task, cfg.process_results, in.doc, it.lls[0])) {
            it.x[m] = w.ll;
            it.weight[m] = w.weight;
          }
          break;
        }
        // Default: words and bytes of doc_to_target (the scored text).
        const std::string& text = in.continuations[0];
        const double words = static_cast<double>(count_words(text)), bytes = static_cast<double>(text.size());
        for (const auto& [m, w] : {std::pair<const char*, double>{"word_perplexity", words},
                                   {"byte_perplexity", bytes}, {"bits_per_byte", bytes}}) {
          it.x[m] = it.lls[0];
          it.weight[m] = w;
        }
        break;
      }
    }
  }
}

void aggregate(const TaskConfig& cfg, TaskResult& r, int64_t bootstrap_iters) {
  r.n = static_cast<int64_t>(r.items.size());
  r.metrics.clear();
  r.subtasks.clear();
  r.metric_order.clear();
  if (r.items.empty()) return;
  std::map<std::string, std::vector<const ItemResult*>> by_sub;
  std::vector<const ItemResult*> all;
  for (const auto& it : r.items) {
    by_sub[it.subtask].push_back(&it);
    all.push_back(&it);
  }
  const bool grouped = !(by_sub.size() == 1 && by_sub.begin()->first.empty());
  for (const auto& spec : cfg.metrics) {
    JNAS_CHECK_CONFIG(r.items[0].x.count(spec.metric), "{}: metric '{}' is not produced by output_type {}{}", cfg.source,
                      spec.metric, output_type_name(cfg.output_type),
                      cfg.process_results.empty() ? "" : " with process_results " + cfg.process_results);
    r.metric_order.push_back(spec.metric);
    if (!grouped || spec.aggregation != "mean") {
      r.metrics[spec.metric] = aggregate_metric(spec.aggregation, items_of(all, spec.metric), bootstrap_iters);
      if (!grouped) continue;
    }
    std::vector<double> values, stderrs;
    std::vector<int64_t> sizes;
    for (const auto& [sub, items] : by_sub) {
      const MetricValue v = aggregate_metric(spec.aggregation, items_of(items, spec.metric), bootstrap_iters);
      r.subtasks[sub].first = static_cast<int64_t>(items.size());
      r.subtasks[sub].second[spec.metric] = v;
      values.push_back(v.value);
      stderrs.push_back(v.stderr_);
      sizes.push_back(static_cast<int64_t>(items.size()));
    }
    if (spec.aggregation != "mean") continue;
    // lm-eval aggregate_subtask_metrics(weight_by_size=True) and pooled_sample_stderr.
    double total = 0, weighted = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      weighted += values[i] * static_cast<double>(sizes[i]);
      total += static_cast<double>(sizes[i]);
    }
    r.metrics[spec.metric] = {weighted / total, bootstrap_iters > 0 ? pooled_stderr(stderrs, sizes)
                                                                     : std::numeric_limits<double>::quiet_NaN()};
  }
}

Json task_result_json(const TaskResult& r, bool items) {
  Json j{{"task", r.task}, {"output_type", output_type_name(r.output_type)}, {"n", r.n},
         {"requests", r.requests}, {"seconds", r.seconds}};
  if (r.gold_out_of_range > 0) j["gold_out_of_range"] = r.gold_out_of_range;
  j["metrics"] = r.metric_order;
  for (const auto& [m, v] : r.metrics) {
    j[m] = number_or_null(v.value);
    j[m + "_stderr"] = number_or_null(v.stderr_);
  }
  if (!r.subtasks.empty()) {
    Json subs = Json::object();
    for (const auto& [name, nm] : r.subtasks) {
      Json s{{"n", nm.first}};
      for (const auto& [m, v] : nm.second) {
        s[m] = number_or_null(v.value);
        s[m + "_stderr"] = number_or_null(v.stderr_);
      }
      subs[name] = std::move(s);
    }
    j["subtasks"] = std::move(subs);
  }
  if (items) {
    Json arr = Json::array();
    for (const auto& it : r.items) {
      Json e{{"lls", it.lls}, {"cont_tokens", it.cont_tokens}};
      if (!it.greedy.empty()) e["greedy"] = it.greedy;
      if (r.output_type == OutputType::kMultipleChoice) {
        e["gold"] = it.golds.size() == 1 ? Json(it.golds[0]) : Json(it.golds);
        e["pred"] = it.score.pred;
        e["pred_norm"] = it.score.pred_norm;
      }
      for (const auto& [m, w] : it.weight) e[m + "_weight"] = w;
      if (!it.subtask.empty()) e["subtask"] = it.subtask;
      arr.push_back(std::move(e));
    }
    j["items"] = std::move(arr);
  }
  return j;
}

}  // namespace jointnas::eval
