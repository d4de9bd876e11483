// Accuracy-latency Pareto fronts from measured points, and the two headline numbers of
// `jointnas pareto` (docs/pareto.md): the speed-up at equal quality and the quality gain at equal
// latency of one front over another. Torch-free.
//
// A point is (cost x, loss y), both lower-is-better: x is a measured latency, y a perplexity or
// an error rate (1 - accuracy; callers flip accuracies). A front is the non-dominated subset,
// sorted by x ascending with y strictly descending. The headline numbers read a front as a
// staircase: at cost x a method delivers its best point of cost <= x, and loss y costs it its
// cheapest point of loss <= y. No model exists between two measured points, and a straight line
// between them made a front with one more, better point compare worse (docs/pareto.md).
// `loss_at`/`cost_at` interpolate linearly in (log x, y), as the plot's lines do.
#pragma once

#include <cmath>
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

// The staircase: the least loss of the points with cost <= x; nullopt below the front's cheapest.
std::optional<double> best_within(const std::vector<Point>& front, double x);
// The staircase: the cost of the cheapest point with loss <= y; nullopt below the front's best.
std::optional<double> cheapest_reaching(const std::vector<Point>& front, double y);

// One comparison of front `a` (the method) against front `b` (the baseline) on the staircases, on
// a grid of `samples` values spread evenly (in log x for costs, linearly in y for losses) over
// where both are defined: costs from the larger of the two cheapest points up to the slowest point
// of either, capped at `x_max` (the method's largest budget: beyond it the method was not asked);
// losses from the larger of the two best up to the larger of the two worst.
struct Comparison {
  // cost_b(y) / cost_a(y) at equal loss: > 1 means `a` is faster. nullopt when no loss level is
  // reached by both.
  std::optional<double> speedup_max, speedup_median;
  double speedup_at_y = 0;  // the loss where the maximum is reached
  // loss_b(x) - loss_a(x) at equal cost: > 0 means `a` is better.
  std::optional<double> gain_max, gain_median;
  double gain_at_x = 0;
  int overlap_samples_y = 0, overlap_samples_x = 0;
};
Comparison compare(const std::vector<Point>& front_a, const std::vector<Point>& front_b, int samples = 64,
                   double x_max = INFINITY);

}  // namespace jointnas::report
