// lm-eval's per-document metrics and their aggregation with standard errors (api/task.py
// process_results, api/metrics.py): acc / acc_norm / acc_bytes of a multiple-choice item,
// perplexity and acc (is_greedy) of a loglikelihood request, word / byte perplexity and bits per
// byte of a rolling loglikelihood; aggregations mean, perplexity, weighted_perplexity,
// bits_per_byte; standard errors: mean_stderr for means, lm-eval's bootstrap (its own seeds, so
// the same number) for perplexity, none for the weighted ones; groups (MMLU subjects) by
// weight_by_size with the pooled standard error. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace jointnas::eval {

// Per-choice decisions of one multiple-choice item (numpy.argmax: the first maximum wins).
struct ChoiceScore {
  int64_t pred = 0, pred_norm = 0, pred_bytes = 0;
  double acc = 0, acc_norm = 0, acc_bytes = 0;
};
// `choices` are lm-eval's doc_to_choice strings: acc_norm divides by len(choice) in code points,
// acc_bytes by UTF-8 bytes. `golds`: one index (several for multiple targets; -100 never matches).
ChoiceScore score_choices(const std::vector<std::string>& choices, const std::vector<double>& lls,
                          const std::vector<int64_t>& golds);

// A metric's per-document values: x, and a weight for weighted aggregations (word / byte counts).
struct MetricItems {
  std::vector<double> x, weight;
};

struct MetricValue {
  double value = 0;
  double stderr_ = 0;  // NaN when lm-eval reports none ("N/A")
};

// Aggregates `items` with `aggregation` (mean, perplexity, weighted_perplexity, bits_per_byte).
// `bootstrap_iters` (lm-eval's default 100000; 0 = no stderr) applies to perplexity.
MetricValue aggregate_metric(const std::string& aggregation, const MetricItems& items, int64_t bootstrap_iters);

// lm-eval's standard errors (exposed for tests).
double mean_stderr(const std::vector<double>& xs);  // sample stddev / sqrt(n), NaN for n < 2
// bootstrap_stderr(perplexity, xs, iters): chunks of min(1000, iters) resamples, chunk i drawn by
// random.Random(i).choices(xs, k=len(xs)); the sample stddev of the iters // 1000 * 1000 values.
double bootstrap_perplexity_stderr(const std::vector<double>& lls, int64_t iters);
// pooled_sample_stderr of group members with sizes.
double pooled_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes);

// Python's sum of floats (Python 3.11: left to right, no compensation) / len.
double py_mean(const std::vector<double>& xs);

}  // namespace jointnas::eval
