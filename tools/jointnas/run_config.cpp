// Run config parsing for `jointnas run`; see run_config.h.
#include "run_config.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas::cli {
namespace {

namespace fs = std::filesystem;

// Bounds on the JSON a config expands to. YAML aliases make the node graph a DAG, or a cycle
// (`a: &x [*x]`), while JSON copies every alias: nested aliases grow exponentially (425 bytes of
// YAML -> 10^8 values) and a cycle never ends. Real run configs nest 3 levels and hold fewer than
// 100 values.
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxValues = 100000;

struct YamlToJson {
  const std::string& source;
  int64_t values = 0;

  Json convert(const YAML::Node& n, int depth) {
    JNAS_CHECK_CONFIG(depth <= kMaxDepth, "{}: nests deeper than {} levels (an alias inside its own anchor?)",
                      source, kMaxDepth);
    JNAS_CHECK_CONFIG(++values <= kMaxValues, "{}: more than {} values once aliases are expanded", source,
                      kMaxValues);
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        Json j = Json::object();
        for (const auto& kv : n) j[kv.first.as<std::string>()] = convert(kv.second, depth + 1);
        return j;
      }
      case YAML::NodeType::Sequence: {
        Json j = Json::array();
        for (const auto& e : n) j.push_back(convert(e, depth + 1));
        return j;
      }
      case YAML::NodeType::Scalar: {
        const std::string s = n.Scalar();
        if (n.Tag() == "!") return s;  // quoted
        if (s == "true" || s == "false") return s == "true";
        char* end = nullptr;
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && *end == '\0') return static_cast<int64_t>(i);
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && *end == '\0') return d;
        return s;
      }
      default: return nullptr;
    }
  }
};

}  // namespace

std::string RunConfig::str(const Json& o, const char* key, const std::string& dflt) const {
  if (!o.contains(key)) return dflt;
  JNAS_CHECK_CONFIG(o[key].is_string(), "{}: '{}' must be a string", source, key);
  return o[key].get<std::string>();
}

std::string RunConfig::num(const Json& o, const char* key, const std::string& dflt) const {
  if (!o.contains(key)) return dflt;
  JNAS_CHECK_CONFIG(o[key].is_number() || o[key].is_string(), "{}: '{}' must be a number", source, key);
  return o[key].is_string() ? o[key].get<std::string>() : o[key].dump();
}

int64_t RunConfig::integer(const Json& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) const {
  if (!o.contains(key)) return dflt;
  const Json& v = o[key];
  int64_t out = 0;
  bool ok = v.is_number_integer();
  if (ok) {
    out = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    ok = ec == std::errc() && end == s.data() + s.size();
  }
  if (!ok || out < lo || out > hi) {
    throw ConfigError(fmt::format("{}: '{}' must be an integer in [{}, {}], got {}", source, key, lo, hi, v.dump()),
                      fmt::format("write for example `{}: {}`", key, dflt));
  }
  return out;
}

std::string RunConfig::path(const std::string& p) const {
  if (p.rfind("$SHARED/", 0) == 0) {
    const char* env = std::getenv("JNAS_SHARED_DIR");
    const std::string shared = env && *env ? env : (fs::path(JNAS_SOURCE_DIR) / ".." / "shared").string();
    return (fs::path(shared) / p.substr(8)).lexically_normal().string();
  }
  return fs::path(p).is_absolute() ? p : (fs::path(dir) / p).lexically_normal().string();
}

const Json& RunConfig::section(const char* key) const {
  static const Json empty = Json::object();
  if (!j.contains(key)) return empty;
  JNAS_CHECK_CONFIG(j[key].is_object(), "{}: '{}' must be a mapping", source, key);
  return j[key];
}

RunConfig parse_run_config(const std::string& text, const std::string& path) {
  RunConfig rc;
  rc.source = path;
  rc.dir = fs::path(path).parent_path().string();
  if (rc.dir.empty()) rc.dir = ".";
  // Every string of the config ends up in JSON (stages.json keeps the whole text), which must be
  // UTF-8; YAML files are UTF-8 too unless they start with a UTF-16 / UTF-32 byte order mark.
  if (const auto bad = find_invalid_utf8(text)) {
    throw ConfigError(fmt::format("{}: byte {} is not UTF-8 text", path, *bad),
                      "save the run config as UTF-8");
  }
  try {
    rc.j = YamlToJson{path}.convert(YAML::Load(text), 0);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: not valid YAML: {}", path, e.what()));
  }
  JNAS_CHECK_CONFIG(rc.j.is_object(), "{}: a run config is a mapping (model, search_space, budget, ...)", path);
  JNAS_CHECK_CONFIG(rc.j.contains("model") && rc.j.contains("search_space") && (rc.j.contains("budget") || rc.j.contains("pareto")),
                    "{}: needs 'model', 'search_space' and 'budget' (or, for `jointnas pareto`, 'pareto'); see configs/runs/",
                    path);
  return rc;
}

RunConfig load_run_config(const std::string& path) { return parse_run_config(read_text_file(path), path); }

std::vector<std::string> search_knob_flags(const Json& se) {
  std::vector<std::string> a;
  for (const auto& [key, flag] : {std::pair{"entropy_weight", "--entropy-weight"}, std::pair{"penalty", "--penalty"},
                                  std::pair{"penalty_form", "--penalty-form"}, std::pair{"lr_lora", "--lr-lora"},
                                  std::pair{"entropy_threshold", "--entropy-threshold"},
                                  std::pair{"stop_entropy", "--stop-entropy"}, std::pair{"mixing", "--mixing"},
                                  std::pair{"relaxation", "--relaxation"}, std::pair{"tau_end", "--tau-end"}}) {
    if (se.is_object() && se.contains(key)) a.insert(a.end(), {flag, se[key].is_string() ? se[key].get<std::string>() : se[key].dump()});
  }
  return a;
}

}  // namespace jointnas::cli
