// Checked access to JSON documents from untrusted files: every failure names the file and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace jointnas {

using Json = nlohmann::json;

// Parses `text` (read from `source`); throws IoError "malformed JSON in <source>: ...".
Json parse_json(const std::string& text, const std::string& source);
// Reads and parses a JSON file.
Json read_json_file(const std::string& path);

// Typed getters: a missing key returns nullopt; a present key of the wrong type or range throws
// IoError naming `source` and `key`.
std::optional<int64_t> get_int(const Json& j, const char* key, const std::string& source);
std::optional<double> get_number(const Json& j, const char* key, const std::string& source);
std::optional<bool> get_bool(const Json& j, const char* key, const std::string& source);
std::optional<std::string> get_string(const Json& j, const char* key, const std::string& source);

}  // namespace jointnas
