// The calibration fit (see calibration.h): weighted least squares over nested models, chosen by
// leave-one-out error, with outlier rejection.
#include "jointnas/profile/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "jointnas/core/error.h"

namespace jointnas::profile {
namespace {

// One candidate model of fit_calibration: which of (per block, constant) it fits beside scale.
struct CalibModel {
  bool per_block = false, constant = false;
};

// Weighted least squares of `model` on the runs selected by `use`, each row divided by its
// measurement. Columns: prediction, then the optional terms. Returns nullopt when singular.
std::optional<LatencyTable::Calibration> solve_calibration(const std::vector<std::array<double, 3>>& runs,
                                                           const std::vector<bool>& use, CalibModel model) {
  std::vector<std::array<double, 3>> rows;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!use[i]) continue;
    const double inv = 1.0 / runs[i][2];
    std::array<double, 3> r{runs[i][0] * inv, 0, 0};
    int k = 1;
    if (model.per_block) r[k++] = runs[i][1] * inv;
    if (model.constant) r[k++] = inv;
    rows.push_back(r);
  }
  const int p = 1 + (model.per_block ? 1 : 0) + (model.constant ? 1 : 0);
  if (static_cast<int>(rows.size()) < p) return std::nullopt;
  // Normal equations (p <= 3), target 1 for every row, solved by Gaussian elimination with
  // partial pivoting; a pivot below 1e-12 of the matrix scale means the columns are dependent.
  double a[3][4] = {};
  for (const auto& r : rows) {
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) a[i][j] += r[i] * r[j];
      a[i][3] += r[i];
    }
  }
  double scale_ref = 0;
  for (int i = 0; i < p; ++i) scale_ref = std::max(scale_ref, std::abs(a[i][i]));
  for (int c = 0; c < p; ++c) {
    int piv = c;
    for (int r = c + 1; r < p; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    }
    if (!(std::abs(a[piv][c]) > 1e-12 * scale_ref)) return std::nullopt;
    for (int j = 0; j < 4; ++j) std::swap(a[c][j], a[piv][j]);
    for (int r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (int j = c; j < 4; ++j) a[r][j] -= f * a[c][j];
    }
  }
  double x[3] = {};
  for (int i = 0; i < p; ++i) x[i] = a[i][3] / a[i][i];
  LatencyTable::Calibration c;
  int k = 0;
  c.scale = x[k++];
  if (model.per_block) c.per_block_ms = x[k++];
  if (model.constant) c.constant_ms = x[k++];
  c.runs = static_cast<int>(rows.size());
  return c;
}

double calibrated(const LatencyTable::Calibration& c, const std::array<double, 3>& run) {
  return c.scale * run[0] + c.per_block_ms * run[1] + c.constant_ms;
}

// A fit the search can use: finite, larger architectures cost more, positive on every used run,
// and not negative on the smallest architecture any space can hold (one block, no op cost): a
// negative constant fitted to noisy runs of large architectures made every small one predict a
// negative latency (stories260K on a loaded 2-core VM: 3.44 x sum - 0.657 ms).
bool plausible(const LatencyTable::Calibration& c, const std::vector<std::array<double, 3>>& runs,
               const std::vector<bool>& use) {
  if (!(std::isfinite(c.scale) && std::isfinite(c.per_block_ms) && std::isfinite(c.constant_ms) && c.scale > 0)) {
    return false;
  }
  if (!(c.per_block_ms + c.constant_ms >= 0)) return false;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (use[i] && !(calibrated(c, runs[i]) > 0)) return false;
  }
  return true;
}

// Leave-one-out root mean square relative error of `model` over the used runs; +inf when some
// held-out fit is singular or implausible.
double loo_error(const std::vector<std::array<double, 3>>& runs, const std::vector<bool>& use, CalibModel model) {
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!use[i]) continue;
    std::vector<bool> rest = use;
    rest[i] = false;
    const auto c = solve_calibration(runs, rest, model);
    if (!c || !plausible(*c, runs, rest)) return std::numeric_limits<double>::infinity();
    const double e = (calibrated(*c, runs[i]) - runs[i][2]) / runs[i][2];
    sum += e * e;
    ++n;
  }
  return std::sqrt(sum / n);
}

}  // namespace

LatencyTable::Calibration fit_calibration(const std::vector<std::array<double, 3>>& runs) {
  JNAS_CHECK_CONFIG(runs.size() >= 3, "calibration needs at least 3 measured runs, got {}", runs.size());
  for (const auto& r : runs) {
    JNAS_CHECK_CONFIG(std::isfinite(r[0]) && r[0] > 0 && std::isfinite(r[2]) && r[2] > 0 && r[1] >= 0,
                      "calibration run (predicted {} ms, {} blocks, measured {} ms) is not usable: predictions "
                      "and measurements must be positive",
                      r[0], r[1], r[2]);
  }
  const CalibModel models[] = {{false, false}, {false, true}, {true, false}, {true, true}};
  std::vector<bool> use(runs.size(), true);
  auto best_fit = [&]() {
    LatencyTable::Calibration best;
    double best_err = std::numeric_limits<double>::infinity();
    bool found = false;
    for (const CalibModel& m : models) {
      const auto c = solve_calibration(runs, use, m);
      if (!c || !plausible(*c, runs, use)) continue;
      // Leave-one-out needs a spare run beyond the parameters; scale alone is the fallback.
      const int p = 1 + (m.per_block ? 1 : 0) + (m.constant ? 1 : 0);
      const double err = (!m.per_block && !m.constant) ? loo_error(runs, use, m)
                         : c->runs >= p + 2            ? loo_error(runs, use, m)
                                                       : std::numeric_limits<double>::infinity();
      if (!found || err < best_err * (1 - 1e-9)) {
        best = *c;
        best_err = err;
        found = true;
      }
    }
    JNAS_CHECK_CONFIG(found, "calibration fit failed on {} runs", runs.size());
    return best;
  };
  LatencyTable::Calibration c = best_fit();
  const int max_outliers = static_cast<int>(runs.size()) / 4;
  int outliers = 0;
  while (outliers < max_outliers) {
    std::vector<double> res;
    size_t worst = 0;
    double worst_e = -1;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!use[i]) continue;
      const double e = std::abs(calibrated(c, runs[i]) - runs[i][2]) / runs[i][2];
      res.push_back(e);
      if (e > worst_e) {
        worst_e = e;
        worst = i;
      }
    }
    std::nth_element(res.begin(), res.begin() + static_cast<std::ptrdiff_t>(res.size() / 2), res.end());
    const double median = res[res.size() / 2];
    if (!(worst_e > 0.10 && worst_e > 4 * median)) break;
    use[worst] = false;
    ++outliers;
    c = best_fit();
  }
  c.outliers = outliers;
  return c;
}

}  // namespace jointnas::profile
