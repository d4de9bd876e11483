// Accuracy-latency Pareto fronts from measured points, and the two headline numbers of
// `jointnas pareto` (docs/pareto.md): the speed-up at equal quality and the quality gain at equal
// latency of one front over another. Torch-free.
//
// A point is (cost x, loss y), both lower-is-better: x is a measured latency, y a perplexity or
// an error rate (1 - accuracy; callers flip accuracies). A front is the non-dominated subset,
// sorted by x ascending with y strictly descending. Between two front points the front is
// interpolated linearly in (log x, y): latency ratios are what the numbers compare, and a
// straight line on the log-latency axis is the plot's. Nothing is extrapolated: outside the x
// (or y) range both fronts cover, there is no number.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace jointnas::report {

struct Point {
  double x = 0, y = 0;
  std::string id;
};

// Non-dominated points (no other point has x' <= x and y' <= y with one strict), sorted by x.
// Points with a non-finite or non-positive x, or a non-finite y, are ignored.
std::vector<Point> front(std::vector<Point> points);

// The front's loss at cost x (linear in log x between neighbours); nullopt outside [x_0, x_n].
std::optional<double> loss_at(const std::vector<Point>& front, double x);
// The least cost at which the front reaches loss y; nullopt outside [y_n, y_0].
std::optional<double> cost_at(const std::vector<Point>& front, double y);

// One comparison of front `a` (the method) against front `b` (the baseline) on a grid of `samples`
// values spread evenly over the overlap (in log x for costs, linearly in y for losses).
struct Comparison {
  // cost_b(y) / cost_a(y) at equal loss: > 1 means `a` is faster. nullopt when the loss ranges
  // of the fronts do not overlap.
  std::optional<double> speedup_max, speedup_median;
  double speedup_at_y = 0;  // the loss where the maximum is reached
  // loss_b(x) - loss_a(x) at equal cost: > 0 means `a` is better.
  std::optional<double> gain_max, gain_median;
  double gain_at_x = 0;
  int overlap_samples_y = 0, overlap_samples_x = 0;
};
Comparison compare(const std::vector<Point>& front_a, const std::vector<Point>& front_b, int samples = 64);

}  // namespace jointnas::report
