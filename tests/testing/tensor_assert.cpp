// all_close with a diagnostic message.
#include "tensor_assert.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace jointnas::testing {

::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected,
                                     double atol, double rtol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape mismatch: actual " << actual.sizes()
                                         << " expected " << expected.sizes();
  }
  at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  at::Tensor e = expected.detach().to(at::kCPU, at::kDouble);
  at::Tensor diff = (a - e).abs();
  at::Tensor tol = atol + rtol * e.abs();
  at::Tensor bad = diff.gt(tol).logical_or(diff.isnan());
  const int64_t n_bad = bad.sum().item<int64_t>();
  if (a.numel() == 0) return ::testing::AssertionSuccess();
  const int64_t worst = diff.nan_to_num(1e300).flatten().argmax().item<int64_t>();
  const double max_abs = diff.flatten()[worst].item<double>();
  const double max_rel = (diff / e.abs().clamp_min(1e-30)).nan_to_num(1e300).max().item<double>();
  std::string msg = fmt::format(
      "{} of {} elements out of tolerance (atol {:g}, rtol {:g}); dtype {} vs {}, shape [{}]; max abs "
      "err {:.3e} at flat index {} (actual {:.9g}, expected {:.9g}); max rel err {:.3e}",
      n_bad, a.numel(), atol, rtol, c10::toString(actual.scalar_type()),
      c10::toString(expected.scalar_type()), fmt::join(actual.sizes(), ", "), max_abs, worst,
      a.flatten()[worst].item<double>(), e.flatten()[worst].item<double>(), max_rel);
  if (n_bad > 0) return ::testing::AssertionFailure() << msg;
  return ::testing::AssertionSuccess() << msg;
}

std::string shared_path(const std::string& rel) { return std::string(JNAS_SHARED_DIR) + "/" + rel; }
std::string fixture_path(const std::string& rel) { return std::string(JNAS_FIXTURES_DIR) + "/" + rel; }
std::string repo_path(const std::string& rel) { return std::string(JNAS_REPO_DIR) + "/" + rel; }

}  // namespace jointnas::testing
