// Checked access to JSON documents from untrusted files: every failure names the file and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace jointnas {

using Json = nlohmann::json;

// Parses `text` (read from `source`); throws IoError "malformed JSON in <source>: ...".
Json parse_json(const std::string& text, const std::string& source);
// Reads and parses a JSON file.
Json read_json_file(const std::string& path);

// Offset of the first byte of `text` that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF included), nullopt when all of it is valid. JSON
// strings must be UTF-8: nlohmann's dump() throws type_error 316 on anything else, so text from
// other formats (YAML) is checked with this before it goes into a Json value.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// Typed getters: a missing key returns nullopt; a present key of the wrong type or range throws
// IoError naming `source` and `key`.
std::optional<int64_t> get_int(const Json& j, const char* key, const std::string& source);
std::optional<double> get_number(const Json& j, const char* key, const std::string& source);
std::optional<bool> get_bool(const Json& j, const char* key, const std::string& source);
std::optional<std::string> get_string(const Json& j, const char* key, const std::string& source);

}  // namespace jointnas
