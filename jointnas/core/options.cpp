// Options declared once: the non-template parts of the visitors (core/options.h).
#include "jointnas/core/options.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::opt {
namespace {

namespace fs = std::filesystem;

// A value as it appears in a message: at most 80 characters of its JSON (a 100 MB string in a
// config must not become a 100 MB error line).
std::string shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// A string value as the user wrote it, without JSON quoting, cut to a line.
std::string short_text(const std::string& s) { return s.size() > 80 ? s.substr(0, 77) + "..." : s; }

const char* type_name(const Json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "true/false";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  return "nothing";
}

std::string range_text(double lo, double hi) {
  const bool has_lo = lo > -1e300, has_hi = hi < 1e300;
  if (has_lo && has_hi) return fmt::format(" in [{}, {}]", lo, hi);
  if (has_lo) return fmt::format(" >= {}", lo);
  if (has_hi) return fmt::format(" <= {}", hi);
  return "";
}

}  // namespace

std::string kebab(const char* name) {
  std::string s = name;
  for (char& c : s) {
    if (c == '_') c = '-';
  }
  return s;
}

std::string flag_of(const Key& k) {
  if (k.flag == nullptr) return "--" + kebab(k.name);
  const std::string f = k.flag;
  if (f.empty() || f[0] != '-') return "--" + f;
  // A CLI11 spec of its own ("-m,--model"): its long name.
  const auto p = f.find("--");
  return p == std::string::npos ? f : f.substr(p, f.find(',', p) == std::string::npos ? std::string::npos : f.find(',', p) - p);
}

std::string resolve_path(const std::string& p, const std::string& config_dir) {
  if (p.empty()) return p;
  if (p.rfind("$SHARED/", 0) == 0) {
    const char* env = std::getenv("JNAS_SHARED_DIR");
    const std::string shared = env && *env ? env : (fs::path(JNAS_SOURCE_DIR) / ".." / "shared").string();
    return (fs::path(shared) / p.substr(8)).lexically_normal().string();
  }
  if (fs::path(p).is_absolute() || config_dir.empty()) return p;
  return (fs::path(config_dir) / p).lexically_normal().string();
}

// ---- Reader ----

const Json* Reader::take(const Key& k) {
  taken_.emplace_back(k.name);
  if (!j_.is_object() || !j_.contains(k.name)) {
    JNAS_CHECK_CONFIG(!k.required, "{} is required: {}", origin_.where(k), k.help);
    return nullptr;
  }
  const Json& v = j_[k.name];
  if (v.is_null()) {
    JNAS_CHECK_CONFIG(!k.required, "{} is required: {}", origin_.where(k), k.help);
    return nullptr;  // `key:` with nothing after it keeps the default
  }
  return &v;
}

void Reader::expect_mapping(const char* what) const {
  if (!j_.is_object()) {
    throw ConfigError(fmt::format("{}: {} must be a mapping (key: value lines), got {} {}", origin_.source, what,
                                  type_name(j_), shown(j_)),
                      "see configs/runs/ for examples");
  }
}

void Reader::check_unknown() const {
  if (!j_.is_object()) return;
  for (const auto& [key, v] : j_.items()) {
    bool known = false;
    for (const auto& t : taken_) known = known || t == key;
    if (!known) {
      std::string names;
      for (const auto& t : taken_) names += (names.empty() ? "" : ", ") + t;
      std::string k = key.size() > 60 ? key.substr(0, 57) + "..." : key;
      throw ConfigError(fmt::format("{}: unknown key '{}{}'", origin_.source, origin_.prefix, k),
                        fmt::format("the keys here are: {} (`jointnas run --dump-config CONFIG` prints them all)",
                                    names));
    }
  }
}

int64_t Reader::integer(const Key& k, const Json& v, int64_t lo, int64_t hi) const {
  int64_t out = 0;
  bool ok = v.is_number_integer();
  if (ok) {
    out = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    ok = std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15;
    out = ok ? static_cast<int64_t>(d) : 0;
  }
  if (!ok || out < lo || out > hi) {
    throw ConfigError(fmt::format("{} must be an integer{}, got {} {}", origin_.where(k),
                                  range_text(static_cast<double>(lo), static_cast<double>(hi)), type_name(v), shown(v)),
                      fmt::format("{}: write for example `{}: {}`", k.help, k.name, std::max<int64_t>(lo, 1)));
  }
  return out;
}

void Reader::operator()(const Key& k, double& x, Bounds<double> b) {
  const Json* v = take(k);
  if (v == nullptr) return;
  const bool ok = v->is_number() && std::isfinite(v->get<double>()) && v->get<double>() >= b.lo && v->get<double>() <= b.hi;
  if (!ok) {
    throw ConfigError(fmt::format("{} must be a finite number{}, got {} {}", origin_.where(k), range_text(b.lo, b.hi),
                                  type_name(*v), shown(*v)),
                      k.help);
  }
  x = v->get<double>();
}

void Reader::operator()(const Key& k, bool& x) {
  const Json* v = take(k);
  if (v == nullptr) return;
  JNAS_CHECK_CONFIG(v->is_boolean(), "{} must be true or false, got {} {}", origin_.where(k), type_name(*v), shown(*v));
  x = v->get<bool>();
}

void Reader::operator()(const Key& k, std::string& x, const Choices& c) {
  const Json* v = take(k);
  if (v == nullptr) return;
  // Numbers are accepted where a string is expected (a budget such as `latency: 12.5`).
  std::string s;
  if (v->is_string()) {
    s = v->get<std::string>();
  } else if (v->is_number() && std::isfinite(v->get<double>())) {
    s = v->dump();
  } else {
    throw ConfigError(fmt::format("{} must be a string, got {} {}", origin_.where(k), type_name(*v), shown(*v)), k.help);
  }
  if (!c.empty()) {
    bool ok = false;
    std::string all;
    for (const auto& e : c) ok = ok || e == s, all += (all.empty() ? "" : ", ") + e;
    if (!ok) throw ConfigError(fmt::format("{} must be one of {}, got {}", origin_.where(k), all, shown(*v)), k.help);
  }
  // A value that starts with "--" would read as a flag of the stage it is passed to.
  if (s.rfind("--", 0) == 0) {
    throw ConfigError(fmt::format("{}: '{}' looks like a command-line flag, not a value", origin_.where(k), shown(*v)),
                      k.help);
  }
  x = s;
}

void Reader::operator()(const Key& k, Path& x) {
  std::string s;
  (*this)(k, s);
  if (!s.empty()) x.value = resolve_path(s, dir_);
}

void Reader::operator()(const Key& k, std::vector<std::string>& x, const Choices& c) {
  const Json* v = take(k);
  if (v == nullptr) return;
  // A single value stands for a list of one (`tasks: piqa`).
  const Json list = v->is_array() ? *v : Json::array({*v});
  std::vector<std::string> out;
  for (const Json& e : list) {
    JNAS_CHECK_CONFIG(e.is_string() || e.is_number(), "{} must be a list of strings, got an entry {} {}", origin_.where(k),
                      type_name(e), shown(e));
    const std::string s = e.is_string() ? e.get<std::string>() : e.dump();
    if (!c.empty()) {
      bool ok = false;
      std::string all;
      for (const auto& ch : c) ok = ok || ch == s, all += (all.empty() ? "" : ", ") + ch;
      if (!ok) throw ConfigError(fmt::format("{}: '{}' is not one of {}", origin_.where(k), short_text(s), all), k.help);
    }
    JNAS_CHECK_CONFIG(s.rfind("--", 0) != 0, "{}: {} looks like a command-line flag, not a value", origin_.where(k), shown(e));
    out.push_back(s);
  }
  x = out;
}

void Reader::operator()(const Key& k, std::vector<int64_t>& x, Bounds<int64_t> b) {
  const Json* v = take(k);
  if (v == nullptr) return;
  const Json list = v->is_array() ? *v : Json::array({*v});
  std::vector<int64_t> out;
  for (const Json& e : list) out.push_back(integer(k, e, b.lo, b.hi));
  x = out;
}

std::string Reader::enum_text(const Key& k, const Json& v, const std::string& names) const {
  bool ok = v.is_string();
  if (ok) {
    ok = false;
    const std::string s = v.get<std::string>();
    size_t a = 0;
    while (a <= names.size()) {
      size_t b = names.find(", ", a);
      if (b == std::string::npos) b = names.size();
      ok = ok || names.compare(a, b - a, s) == 0 && b - a == s.size();
      a = b + 2;
    }
  }
  if (!ok) throw ConfigError(fmt::format("{} must be one of {}, got {}", origin_.where(k), names, shown(v)), k.help);
  return v.get<std::string>();
}

// ---- ArgsWriter ----

void ArgsWriter::add(const Key& k, const std::string& v) {
  out_.push_back(flag_of(k));
  out_.push_back(v);
}

void ArgsWriter::operator()(const Key& k, double& x, Bounds<double>) { add(k, fmt::format("{}", x)); }

void ArgsWriter::operator()(const Key& k, bool& x) { out_.push_back(flag_of(k) + (x ? "=true" : "=false")); }

void ArgsWriter::operator()(const Key& k, std::vector<std::string>& x, const Choices&) {
  if (x.empty()) return;
  std::string s;
  for (const auto& e : x) s += (s.empty() ? "" : ",") + e;
  add(k, s);
}

void ArgsWriter::operator()(const Key& k, std::vector<int64_t>& x, Bounds<int64_t>) {
  if (x.empty()) return;
  std::string s;
  for (int64_t e : x) s += (s.empty() ? "" : ",") + std::to_string(e);
  add(k, s);
}

}  // namespace jointnas::opt
