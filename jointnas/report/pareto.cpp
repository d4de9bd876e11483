#include "jointnas/report/pareto.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace jointnas::report {

std::vector<Point> front(std::vector<Point> points) {
  std::erase_if(points, [](const Point& p) { return !std::isfinite(p.x) || p.x <= 0 || !std::isfinite(p.y); });
  std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.x != b.x ? a.x < b.x : a.y < b.y; });
  std::vector<Point> f;
  for (const Point& p : points) {
    if (f.empty() || p.y < f.back().y) f.push_back(p);  // strictly better loss than every cheaper point
  }
  return f;
}

std::optional<double> loss_at(const std::vector<Point>& f, double x) {
  if (f.empty() || !(x > 0) || x < f.front().x || x > f.back().x) return std::nullopt;
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    if (x <= f[i + 1].x) {
      const double t = (std::log(x) - std::log(f[i].x)) / (std::log(f[i + 1].x) - std::log(f[i].x));
      return f[i].y + t * (f[i + 1].y - f[i].y);
    }
  }
  return f.back().y;  // a single point
}

std::optional<double> cost_at(const std::vector<Point>& f, double y) {
  if (f.empty() || y > f.front().y || y < f.back().y) return std::nullopt;
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    if (y >= f[i + 1].y) {  // y_i >= y >= y_{i+1}; y strictly descends along the front
      const double t = (f[i].y - y) / (f[i].y - f[i + 1].y);
      return std::exp(std::log(f[i].x) + t * (std::log(f[i + 1].x) - std::log(f[i].x)));
    }
  }
  return f.front().x;  // a single point
}

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// `value` at `samples` points spread evenly over [lo, hi] (in log when `in_log`), the ends exactly
// (a front's point there counts): the largest value, where, the median and how many there were.
struct Sampled {
  std::optional<double> max, median;
  double at = 0;
  int count = 0;
};
Sampled sample(double lo, double hi, int samples, bool in_log, const std::function<std::optional<double>(double)>& value) {
  Sampled out;
  if (!(lo <= hi)) return out;
  std::vector<double> v;
  for (int i = 0; i < samples; ++i) {
    const double t = static_cast<double>(i) / (samples - 1);
    const double u = i == 0 ? lo
                     : i == samples - 1 ? hi
                     : std::clamp(in_log ? std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * t) : lo + (hi - lo) * t, lo, hi);
    const std::optional<double> r = value(u);
    if (!r) continue;
    if (!out.max || *r > *out.max) {
      out.max = *r;
      out.at = u;
    }
    v.push_back(*r);
  }
  if (!v.empty()) out.median = median(v);
  out.count = static_cast<int>(v.size());
  return out;
}
}  // namespace

std::optional<double> best_within(const std::vector<Point>& f, double x) {
  if (f.empty() || !(x >= f.front().x)) return std::nullopt;
  double best = f.front().y;
  for (const Point& p : f) {
    if (p.x <= x) best = std::min(best, p.y);
  }
  return best;
}

std::optional<double> cheapest_reaching(const std::vector<Point>& f, double y) {
  for (const Point& p : f) {
    if (p.y <= y) return p.x;  // sorted by cost: the first point reaching y is the cheapest
  }
  return std::nullopt;
}

Comparison compare(const std::vector<Point>& a, const std::vector<Point>& b, int samples, double x_max) {
  Comparison c;
  if (a.empty() || b.empty() || samples < 2) return c;
  // Equal loss: from the worse of the two fronts' best losses up to the worse of their worst; above
  // a front's first point its cost is that point's.
  const Sampled r = sample(std::max(a.back().y, b.back().y), std::max(a.front().y, b.front().y), samples, false,
                           [&](double y) -> std::optional<double> {
                             const auto xa = cheapest_reaching(a, y), xb = cheapest_reaching(b, y);
                             if (!xa || !xb) return std::nullopt;
                             return *xb / *xa;
                           });
  c.speedup_max = r.max, c.speedup_median = r.median, c.speedup_at_y = r.at, c.overlap_samples_y = r.count;
  // Equal cost: from where both fronts have a point up to the slowest point of either, within x_max.
  const Sampled g = sample(std::max(a.front().x, b.front().x), std::min(std::max(a.back().x, b.back().x), x_max), samples,
                           true, [&](double x) -> std::optional<double> {
                             const auto ya = best_within(a, x), yb = best_within(b, x);
                             if (!ya || !yb) return std::nullopt;
                             return *yb - *ya;
                           });
  c.gain_max = g.max, c.gain_median = g.median, c.gain_at_x = g.at, c.overlap_samples_x = g.count;
  return c;
}

}  // namespace jointnas::report
