// Checked JSON getters.
#include "jointnas/core/json_util.h"

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas {

Json parse_json(const std::string& text, const std::string& source) {
  // Depth is bounded by nlohmann's recursive parser; refuse absurd inputs before parsing.
  JNAS_CHECK_IO(text.size() < (size_t(1) << 30), "{}: JSON document too large ({} bytes)", source,
                text.size());
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions only to obtain the position of the error for the message.
    try {
      (void)Json::parse(text);
    } catch (const Json::exception& e) {
      throw IoError(fmt::format("malformed JSON in {}: {}", source, e.what()));
    }
    throw IoError(fmt::format("malformed JSON in {}", source));
  }
  return j;
}

Json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

std::optional<int64_t> get_int(const Json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const Json& v = j.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  throw IoError(fmt::format("{}: '{}' must be an integer, got {}", source, key, v.dump()));
}

std::optional<double> get_number(const Json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const Json& v = j.at(key);
  if (v.is_number()) return v.get<double>();
  throw IoError(fmt::format("{}: '{}' must be a number, got {}", source, key, v.dump()));
}

std::optional<bool> get_bool(const Json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const Json& v = j.at(key);
  if (v.is_boolean()) return v.get<bool>();
  throw IoError(fmt::format("{}: '{}' must be true or false, got {}", source, key, v.dump()));
}

std::optional<std::string> get_string(const Json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const Json& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  throw IoError(fmt::format("{}: '{}' must be a string, got {}", source, key, v.dump()));
}

}  // namespace jointnas
