// Metrics and aggregation as lm-eval 0.4.13 api/metrics.py computes them (see task_metrics.h).
#include "jointnas/eval/task_metrics.h"

#include <cmath>
#include <limits>

#include "jointnas/core/error.h"
#include "jointnas/eval/py_random.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool matches(int64_t pred, const std::vector<int64_t>& golds) {
  for (int64_t g : golds) {
    if (g == pred) return true;
  }
  return false;
}

double sample_stddev(const std::vector<double>& xs) {
  const double mu = py_mean(xs);
  double ss = 0;
  for (double x : xs) ss += (x - mu) * (x - mu);
  return std::sqrt(ss / static_cast<double>(xs.size() - 1));
}

double weighted_mean(const MetricItems& m) {
  JNAS_CHECK_CONFIG(m.weight.size() == m.x.size(), "weighted aggregation needs a weight per item");
  double a = 0, b = 0;
  for (size_t i = 0; i < m.x.size(); ++i) {
    a += m.x[i];
    b += m.weight[i];
  }
  return a / b;
}

}  // namespace

double py_mean(const std::vector<double>& xs) {
  double s = 0;
  for (double x : xs) s += x;
  return s / static_cast<double>(xs.size());
}

ChoiceScore score_choices(const std::vector<std::string>& choices, const std::vector<double>& lls,
                          const std::vector<int64_t>& golds) {
  JNAS_CHECK_CONFIG(lls.size() == choices.size() && !lls.empty(), "{} log-likelihoods for {} choices", lls.size(),
                    choices.size());
  ChoiceScore s;
  double best = -std::numeric_limits<double>::infinity(), best_norm = best, best_bytes = best;
  bool first = true;
  for (size_t i = 0; i < lls.size(); ++i) {
    // numpy divides by the float length: an empty choice gives +-inf (or nan for ll 0).
    const double norm = lls[i] / static_cast<double>(py::length(choices[i]));
    const double by_bytes = lls[i] / static_cast<double>(choices[i].size());
    // np.argmax: the first maximum; NaN counts as the maximum (numpy propagates it).
    auto better = [&](double v, double b) { return first || (!std::isnan(b) && (std::isnan(v) || v > b)); };
    if (better(lls[i], best)) best = lls[i], s.pred = static_cast<int64_t>(i);
    if (better(norm, best_norm)) best_norm = norm, s.pred_norm = static_cast<int64_t>(i);
    if (better(by_bytes, best_bytes)) best_bytes = by_bytes, s.pred_bytes = static_cast<int64_t>(i);
    first = false;
  }
  s.acc = matches(s.pred, golds);
  s.acc_norm = matches(s.pred_norm, golds);
  s.acc_bytes = matches(s.pred_bytes, golds);
  return s;
}

double mean_stderr(const std::vector<double>& xs) {
  if (xs.size() < 2) return kNaN;  // lm-eval: ZeroDivisionError in sample_stddev, reported N/A
  return sample_stddev(xs) / std::sqrt(static_cast<double>(xs.size()));
}

double bootstrap_perplexity_stderr(const std::vector<double>& lls, int64_t iters) {
  if (iters <= 0 || lls.empty()) return kNaN;
  const int64_t chunk = std::min<int64_t>(1000, iters);
  std::vector<double> res;
  res.reserve(static_cast<size_t>(iters / chunk * chunk));
  std::vector<double> draw(lls.size());
  for (int64_t i = 0; i < iters / chunk; ++i) {
    py::Random rnd(static_cast<uint64_t>(i));
    for (int64_t c = 0; c < chunk; ++c) {
      double s = 0;
      for (size_t j : rnd.choices(lls.size(), lls.size())) s += lls[j];
      res.push_back(std::exp(-(s / static_cast<double>(lls.size()))));
    }
  }
  return res.size() < 2 ? kNaN : sample_stddev(res);
}

double pooled_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes) {
  double var = 0, total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const double n = static_cast<double>(sizes[i]);
    total += n;
    if (sizes[i] > 1 && std::isfinite(stderrs[i])) var += (n - 1) * stderrs[i] * stderrs[i] * n;
  }
  const double dof = total - static_cast<double>(sizes.size());
  return dof > 0 ? std::sqrt(var / dof / total) : kNaN;
}

MetricValue aggregate_metric(const std::string& aggregation, const MetricItems& items, int64_t bootstrap_iters) {
  MetricValue v;
  JNAS_CHECK_CONFIG(!items.x.empty(), "no documents to aggregate");
  if (aggregation == "mean") {
    v.value = py_mean(items.x);
    v.stderr_ = bootstrap_iters > 0 ? mean_stderr(items.x) : kNaN;
  } else if (aggregation == "perplexity") {
    v.value = std::exp(-py_mean(items.x));
    v.stderr_ = bootstrap_perplexity_stderr(items.x, bootstrap_iters);
  } else if (aggregation == "weighted_perplexity") {
    v.value = std::exp(-weighted_mean(items));
    v.stderr_ = kNaN;
  } else if (aggregation == "bits_per_byte") {
    v.value = -weighted_mean(items) / std::log(2.0);
    v.stderr_ = kNaN;
  } else {
    throw ConfigError(fmt::format("unknown aggregation '{}'", aggregation));
  }
  return v;
}

}  // namespace jointnas::eval
