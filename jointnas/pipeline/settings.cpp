// Settings shared by the stages; see settings.h.
#include "jointnas/pipeline/settings.h"

#include <cmath>

#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::pipeline {

double parse_latency_budget(const std::string& text, double dense_ms, const std::string& what) {
  const bool relative = !text.empty() && text.back() == 'x';
  const std::string num = relative ? text.substr(0, text.size() - 1) : text;
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(num, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string shown = text.size() > 40 ? text.substr(0, 37) + "..." : text;
  JNAS_CHECK_CONFIG(used == num.size() && !num.empty() && std::isfinite(v) && v > 0 && (!relative || v <= 10),
                    "{} '{}': give milliseconds (12.5) or a fraction of the dense model (0.6x)", what, shown);
  return relative ? v * dense_ms : v;
}

void check_budget(const BudgetSettings& b, const std::string& what) {
  if (!b.latency.empty()) parse_latency_budget(b.latency, 1.0, what + ".latency");
  if (!b.any()) {
    throw ConfigError(fmt::format("{}: no budget is set", what),
                      "give budget.latency (ms, or 0.6x of the original), budget.memory_mib or budget.params (> 0)");
  }
}

}  // namespace jointnas::pipeline
