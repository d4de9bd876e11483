// The latency table (see latency_table.h): keys, lookup, and the JSON file with its checks.
#include "jointnas/profile/latency_table.h"

#include <cmath>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"

namespace jointnas::profile {

std::string LatencyTable::linear_key(int64_t m, int64_t k, int64_t n, const std::string& format,
                                     bool quantized_input) {
  return fmt::format("linear/m{}/k{}/n{}/{}{}", m, k, n, format, quantized_input ? "/qx" : "");
}
std::string LatencyTable::attention_key(int64_t b, int64_t rows, int64_t context, int64_t heads,
                                        int64_t kv_heads, int64_t head_dim) {
  return fmt::format("attention/b{}/q{}/c{}/h{}/kv{}/d{}", b, rows, context, heads, kv_heads, head_dim);
}
std::string LatencyTable::block_fixed_key(int64_t m, int64_t h, int64_t i) {
  return fmt::format("block_fixed/m{}/h{}/i{}", m, h, i);
}
std::string LatencyTable::head_key(int64_t m, int64_t h, int64_t v) {
  return fmt::format("head/m{}/h{}/v{}", m, h, v);
}

double LatencyTable::ms(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    throw ConfigError(fmt::format("latency table {} has no entry '{}'",
                                  source.empty() ? "(in memory)" : source, key),
                      "profile this shape: `jointnas profile` with the search space and workload");
  }
  return it->second.ms;
}

const LatencyTable::Calibration* LatencyTable::calibration_for(const Workload& w) const {
  auto it = calibration.find(w.name());
  return it == calibration.end() ? nullptr : &it->second;
}

Json LatencyTable::Calibration::to_json() const {
  return Json{{"scale", scale}, {"per_block_ms", per_block_ms}, {"constant_ms", constant_ms},
              {"runs", runs}, {"outliers", outliers}, {"memory_bytes", memory_bytes}, {"reference_ms", reference_ms}};
}

Json LatencyTable::to_json() const {
  Json e = Json::object();
  for (const auto& [k, v] : entries_) {
    e[k] = Json{{"ms", v.ms}, {"p10", v.p10}, {"p90", v.p90}, {"repeats", v.repeats}};
  }
  Json cal = Json::object();
  for (const auto& [k, c] : calibration) cal[k] = c.to_json();
  return Json{{"format", "jointnas-latency-table"}, {"version", 1}, {"meta", meta},
              {"calibration", cal}, {"entries", e}};
}

LatencyTable LatencyTable::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_IO(has_format_tag(j, "jointnas-latency-table"),
                "{}: not a jointnas latency table (expected \"format\": \"jointnas-latency-table\")", src);
  LatencyTable t;
  t.source = src;
  if (j.contains("meta")) t.meta = j["meta"];
  if (j.contains("calibration") && j["calibration"].is_object()) {
    for (const auto& [k, v] : j["calibration"].items()) {
      Calibration c;
      c.scale = get_number(v, "scale", src).value_or(1.0);
      c.per_block_ms = get_number(v, "per_block_ms", src).value_or(0.0);
      c.constant_ms = get_number(v, "constant_ms", src).value_or(0.0);
      c.runs = static_cast<int>(get_int(v, "runs", src).value_or(0));
      c.outliers = static_cast<int>(get_int(v, "outliers", src).value_or(0));
      c.memory_bytes = get_int(v, "memory_bytes", src).value_or(0);
      c.reference_ms = get_number(v, "reference_ms", src).value_or(0.0);
      JNAS_CHECK_IO(std::isfinite(c.reference_ms) && c.reference_ms >= 0 && c.reference_ms < 1e9,
                    "{}: calibration '{}' has reference_ms {} (expected 0 <= ms < 1e9)", src, k, c.reference_ms);
      // A constant beside whole models: anything past a petabyte is a corrupt file, and would
      // overflow the peak it is added to.
      JNAS_CHECK_IO(c.memory_bytes > -(int64_t{1} << 50) && c.memory_bytes < (int64_t{1} << 50),
                    "{}: calibration '{}' has memory_bytes {} (expected |bytes| < 2^50)", src, k, c.memory_bytes);
      JNAS_CHECK_IO(std::isfinite(c.scale) && std::isfinite(c.per_block_ms) && std::isfinite(c.constant_ms),
                    "{}: calibration '{}' has non-finite values", src, k);
      t.calibration[k] = c;
    }
  }
  JNAS_CHECK_IO(j.contains("entries") && j["entries"].is_object(), "{}: 'entries' must be an object", src);
  for (const auto& [k, v] : j["entries"].items()) {
    JNAS_CHECK_IO(v.is_object(), "{}: entry '{}' must be an object", src, k);
    Entry e;
    auto ms = get_number(v, "ms", src);
    JNAS_CHECK_IO(ms && std::isfinite(*ms) && *ms >= 0, "{}: entry '{}' needs a finite ms >= 0", src, k);
    e.ms = *ms;
    e.p10 = get_number(v, "p10", src).value_or(e.ms);
    e.p90 = get_number(v, "p90", src).value_or(e.ms);
    e.repeats = static_cast<int>(get_int(v, "repeats", src).value_or(0));
    t.entries_[k] = e;
  }
  return t;
}

LatencyTable LatencyTable::load(const std::string& path) { return from_json(read_json_file(path), path); }

void LatencyTable::save(const std::string& path) const { write_file_atomic(path, to_json().dump(1) + "\n"); }

bool measured_on_cpu(const LatencyTable& t) {
  return t.meta.is_object() && t.meta.contains("device") && t.meta["device"].is_string() &&
         t.meta["device"].get<std::string>() == "cpu";
}

}  // namespace jointnas::profile
