#include "search_flags.h"

#include <cmath>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"

namespace jointnas::cli {

void add_workload_flags(CLI::App* app, profile::Workload& w) {
  app->add_option("--workload", w.kind, "decode | prefill (as profiled)")->check(CLI::IsMember({"decode", "prefill"}));
  app->add_option("--batch", w.batch, "Workload batch")->check(CLI::PositiveNumber);
  app->add_option("--context", w.context, "Decode context")->check(CLI::NonNegativeNumber);
  app->add_option("--tokens", w.tokens, "Prefill tokens")->check(CLI::PositiveNumber);
}

double parse_latency_budget(const std::string& text, double dense_ms, const std::string& flag) {
  const bool relative = !text.empty() && text.back() == 'x';
  const std::string num = relative ? text.substr(0, text.size() - 1) : text;
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(num, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  JNAS_CHECK_CONFIG(used == num.size() && !num.empty() && std::isfinite(v) && v > 0,
                    "{} '{}': give milliseconds (12.5) or a fraction of the dense model (0.6x)", flag, text);
  return relative ? v * dense_ms : v;
}

std::vector<int64_t> ranks_from_importance(const std::string& path, int64_t layers) {
  const Json j = read_json_file(path);
  JNAS_CHECK_IO(j.contains("block_rank") && j["block_rank"].is_array(), "{}: no 'block_rank' list", path);
  std::vector<int64_t> rank_of(static_cast<size_t>(layers), -1);
  JNAS_CHECK_IO(static_cast<int64_t>(j["block_rank"].size()) == layers, "{}: block_rank lists {} blocks, the model has {}",
                path, j["block_rank"].size(), layers);
  for (size_t r = 0; r < j["block_rank"].size(); ++r) {
    const Json& v = j["block_rank"][r];
    JNAS_CHECK_IO(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < layers &&
                      rank_of[v.get<size_t>()] < 0,
                  "{}: block_rank must be a permutation of 0..{}", path, layers - 1);
    rank_of[v.get<size_t>()] = static_cast<int64_t>(r);
  }
  return rank_of;
}

}  // namespace jointnas::cli
