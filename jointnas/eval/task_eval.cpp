// Task evaluation glue (see task_eval.h).
#include "jointnas/eval/task_eval.h"

#include <chrono>
#include <cmath>

#include "jointnas/core/error.h"

namespace jointnas::eval {
namespace {

const char* const kMetricNames[] = {"acc", "acc_norm", "acc_bytes"};

double metric_of(const ItemScore& s, const std::string& m) {
  return m == "acc" ? s.acc : m == "acc_norm" ? s.acc_norm : s.acc_bytes;
}

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

}  // namespace

void aggregate(TaskResult& r) {
  r.n = static_cast<int64_t>(r.items.size());
  std::map<std::string, std::vector<const ItemResult*>> by_sub;
  for (const auto& it : r.items) by_sub[it.subtask].push_back(&it);
  r.subtasks.clear();
  r.metrics.clear();
  const bool grouped = !(by_sub.size() == 1 && by_sub.begin()->first.empty());
  for (const char* m : kMetricNames) {
    if (!grouped) {
      std::vector<double> xs;
      for (const auto& it : r.items) xs.push_back(metric_of(it.score, m));
      r.metrics[m] = mean_stderr(xs);
      continue;
    }
    std::vector<MetricValue> parts;
    std::vector<int64_t> sizes;
    for (const auto& [sub, items] : by_sub) {
      std::vector<double> xs;
      for (const auto* it : items) xs.push_back(metric_of(it->score, m));
      MetricValue v = mean_stderr(xs);
      r.subtasks[sub].first = static_cast<int64_t>(items.size());
      r.subtasks[sub].second[m] = v;
      parts.push_back(v);
      sizes.push_back(static_cast<int64_t>(items.size()));
    }
    r.metrics[m] = pooled(parts, sizes);
  }
}

TaskResult evaluate_task(const model::LlamaModel& model, const tok::Tokenizer& tok, int64_t bos,
                         TaskConfig cfg, const TaskEvalOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opts.num_fewshot >= 0) {
    JNAS_CHECK_CONFIG(opts.num_fewshot == 0 || !cfg.fewshot_path.empty(),
                      "task {} has no few-shot split (fewshot_path in {})", cfg.task, cfg.source);
    cfg.num_fewshot = opts.num_fewshot;
  }
  const std::vector<Doc> docs = read_docs(cfg, opts.data_dir, opts.limit);
  const std::vector<Doc> shots = read_fewshot_docs(cfg, opts.data_dir);
  const std::vector<McItem> items = make_items(cfg, docs, shots);
  std::vector<LoglikRequest> reqs;
  for (const auto& it : items) {
    for (size_t c = 0; c < it.choices.size(); ++c) {
      reqs.push_back(encode_request(tok, bos, it.contexts[c], it.continuations[c]));
    }
  }
  const std::vector<LoglikResult> lls = score_requests(model, reqs, opts.score);
  TaskResult r;
  r.task = cfg.task;
  r.requests = static_cast<int64_t>(reqs.size());
  size_t k = 0;
  for (const auto& it : items) {
    ItemResult ir;
    ir.subtask = it.subtask;
    ir.where = it.where;
    ir.gold = it.gold;
    for (size_t c = 0; c < it.choices.size(); ++c, ++k) {
      ir.lls.push_back(lls[k].logprob);
      ir.greedy.push_back(lls[k].greedy);
      ir.cont_tokens.push_back(static_cast<int64_t>(reqs[k].continuation.size()));
    }
    ir.score = score_item(it, ir.lls);
    r.items.push_back(std::move(ir));
  }
  aggregate(r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Json task_result_json(const TaskResult& r, bool items) {
  Json j{{"task", r.task}, {"n", r.n}, {"requests", r.requests}, {"seconds", r.seconds}};
  for (const auto& [m, v] : r.metrics) {
    j[m] = v.mean;
    j[m + "_stderr"] = number_or_null(v.stderr_);
  }
  if (!r.subtasks.empty()) {
    Json subs = Json::object();
    for (const auto& [name, nm] : r.subtasks) {
      Json s{{"n", nm.first}};
      for (const auto& [m, v] : nm.second) {
        s[m] = v.mean;
        s[m + "_stderr"] = number_or_null(v.stderr_);
      }
      subs[name] = std::move(s);
    }
    j["subtasks"] = std::move(subs);
  }
  if (items) {
    Json arr = Json::array();
    for (size_t i = 0; i < r.items.size(); ++i) {
      const auto& it = r.items[i];
      Json e{{"gold", it.gold},        {"lls", it.lls},
             {"pred", it.score.pred},  {"pred_norm", it.score.pred_norm},
             {"greedy", it.greedy},    {"cont_tokens", it.cont_tokens}};
      if (!it.subtask.empty()) e["subtask"] = it.subtask;
      arr.push_back(std::move(e));
    }
    j["items"] = std::move(arr);
  }
  return j;
}

}  // namespace jointnas::eval
