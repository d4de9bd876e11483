// The run config; see run_config.h.
#include "jointnas/pipeline/run_config.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/profile/workload.h"
#include "jointnas/search/space.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

// Bounds on the JSON a config expands to. YAML aliases make the node graph a DAG, or a cycle
// (`a: &x [*x]`), while JSON copies every alias: nested aliases grow exponentially (425 bytes of
// YAML -> 10^8 values) and a cycle never ends. Real run configs nest 3 levels and hold fewer than
// 100 values.
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxValues = 100000;
// A run config is a page of text; a multi-megabyte one is a mistake (or an attack on the error
// messages, which quote values).
constexpr size_t kMaxConfigBytes = size_t(1) << 20;

struct YamlToJson {
  const std::string& source;
  int64_t values = 0;

  // A string as yaml-cpp decoded it must still be UTF-8: its escapes and its UTF-16 / UTF-32
  // decoding can produce code points JSON cannot hold (above U+10FFFF, lone surrogates).
  std::string utf8(std::string s) const {
    if (const auto bad = find_invalid_utf8(s)) {
      throw ConfigError(fmt::format("{}: a value decodes to bytes that are not UTF-8 (byte {} of '{}')", source, *bad,
                                    s.substr(0, std::min<size_t>(*bad, 40))),
                        "save the run config as UTF-8 text and write characters up to U+10FFFF");
    }
    return s;
  }

  Json convert(const YAML::Node& n, int depth) {
    JNAS_CHECK_CONFIG(depth <= kMaxDepth, "{}: nests deeper than {} levels (an alias inside its own anchor?)", source,
                      kMaxDepth);
    JNAS_CHECK_CONFIG(++values <= kMaxValues, "{}: more than {} values once aliases are expanded", source, kMaxValues);
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        Json j = Json::object();
        for (const auto& kv : n) {
          const std::string key = utf8(kv.first.as<std::string>());
          // YAML forbids a key twice in one mapping; yaml-cpp keeps both and the later would win.
          JNAS_CHECK_CONFIG(!j.contains(key), "{}: the key '{}' appears twice in one mapping", source,
                            key.size() > 60 ? key.substr(0, 57) + "..." : key);
          j[key] = convert(kv.second, depth + 1);
        }
        return j;
      }
      case YAML::NodeType::Sequence: {
        Json j = Json::array();
        for (const auto& e : n) j.push_back(convert(e, depth + 1));
        return j;
      }
      case YAML::NodeType::Scalar: {
        const std::string s = utf8(n.Scalar());
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

RunConfig parse_run_config(const std::string& text, const std::string& path) {
  RunConfig rc;
  rc.source = path;
  rc.dir = fs::path(path).parent_path().string();
  if (rc.dir.empty()) rc.dir = ".";
  JNAS_CHECK_CONFIG(text.size() <= kMaxConfigBytes, "{}: {} bytes is too large for a run config (at most {})", path,
                    text.size(), kMaxConfigBytes);
  // Every string of the config ends up in JSON (stages.json keeps the whole text), which must be
  // UTF-8; YAML files are UTF-8 too unless they start with a UTF-16 / UTF-32 byte order mark.
  if (const auto bad = find_invalid_utf8(text)) {
    throw ConfigError(fmt::format("{}: byte {} is not UTF-8 text", path, *bad), "save the run config as UTF-8");
  }
  // yaml-cpp reads a document whose first bytes hold a NUL as UTF-16 or UTF-32; a run config is
  // UTF-8 text and has none.
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    throw ConfigError(fmt::format("{}: byte {} is a NUL: not UTF-8 text (UTF-16 or UTF-32?)", path, nul),
                      "save the run config as UTF-8");
  }
  Json j;
  try {
    j = YamlToJson{path}.convert(YAML::Load(text), 0);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: not valid YAML: {}", path, e.what()));
  }
  JNAS_CHECK_CONFIG(j.is_object(), "{}: a run config is a mapping (model, search_space, budget, ...); see configs/runs/",
                    path);
  opt::read(j, rc, opt::Origin{path, ""}, rc.dir);
  rc.has_pareto = j.contains("pareto") && !j["pareto"].is_null();
  return rc;
}

RunConfig load_run_config(const std::string& path) {
  JNAS_CHECK_IO(file_exists(path), "run config {} does not exist (or is not a regular file)", path);
  return parse_run_config(read_text_file(path), path);
}

Json dump(const RunConfig& c) { return opt::write(c); }

ModelSettings stage_model(const RunConfig& c, const std::string& model, const std::string& device) {
  ModelSettings s;
  s.model.value = model;
  s.device = device;
  s.threads = c.threads;
  return s;
}

}  // namespace jointnas::pipeline
