// Checked access to JSON documents from untrusted files: every failure names the file and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// True when `j` is an object whose "format" is the string `tag` (the tag our own files carry).
// Never throws: nlohmann's value("format", "") throws type_error on {"format": 1}.
bool has_format_tag(const Json& j, std::string_view tag);

// j[key] when `j` is an object holding a string there, else `fallback`. Never throws; for fields
// where any other value means "not one we know" (a tokenizer component's "type").
std::string string_or(const Json& j, const char* key, const std::string& fallback);

// j[key] as numbers (a missing key: empty); anything but an array of finite numbers throws
// IoError naming `source` and `key`.
std::vector<double> get_numbers(const Json& j, const char* key, const std::string& source);

}  // namespace jointnas
