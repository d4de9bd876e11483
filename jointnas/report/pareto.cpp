#include "jointnas/report/pareto.h"

#include <algorithm>
#include <cmath>

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
  // Equal loss: from the better of the two fronts' worst reached loss down to the worse of their
  // best; above a front's first point its cost is that point's.
  const double ylo = std::max(a.back().y, b.back().y), yhi = std::max(a.front().y, b.front().y);
  if (ylo <= yhi) {
    std::vector<double> r;
    double best = -1;
    for (int i = 0; i < samples; ++i) {
      const double y = i == samples - 1 ? yhi : std::clamp(ylo + (yhi - ylo) * i / (samples - 1), ylo, yhi);
      const auto xa = cheapest_reaching(a, y), xb = cheapest_reaching(b, y);
      if (!xa || !xb) continue;
      r.push_back(*xb / *xa);
      if (r.back() > best) {
        best = r.back();
        c.speedup_at_y = y;
      }
    }
    if (!r.empty()) {
      c.speedup_max = best;
      c.speedup_median = median(r);
      c.overlap_samples_y = static_cast<int>(r.size());
    }
  }
  // Equal cost: from where both fronts have a point up to the slowest point of either, within x_max.
  const double xlo = std::max(a.front().x, b.front().x), xhi = std::min(std::max(a.back().x, b.back().x), x_max);
  if (xlo <= xhi) {
    std::vector<double> g;
    double best = -INFINITY;
    for (int i = 0; i < samples; ++i) {
      const double x = i == 0 ? xlo
                       : i == samples - 1
                           ? xhi  // the ends exactly: a front's point there counts
                           : std::clamp(std::exp(std::log(xlo) + (std::log(xhi) - std::log(xlo)) * i / (samples - 1)), xlo, xhi);
      const auto ya = best_within(a, x), yb = best_within(b, x);
      if (!ya || !yb) continue;
      g.push_back(*yb - *ya);
      if (g.back() > best) {
        best = g.back();
        c.gain_at_x = x;
      }
    }
    if (!g.empty()) {
      c.gain_max = best;
      c.gain_median = median(g);
      c.overlap_samples_x = static_cast<int>(g.size());
    }
  }
  return c;
}

}  // namespace jointnas::report
