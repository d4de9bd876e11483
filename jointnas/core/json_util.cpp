// Checked JSON getters.
#include "jointnas/core/json_util.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>
#include <vector>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas {

namespace {

// nlohmann's parser is iterative, but dump(), copies and comparisons recurse once per level, so a
// document of 100k nested brackets (200 KB) parses and then overflows the stack wherever it is
// copied or printed in an error message. Real files (configs, tokenizers, tables, arch.json) nest
// fewer than 10 levels.
constexpr size_t kMaxJsonDepth = 128;

// Deepest bracket nesting of `text`, brackets inside strings not counted (a linear scan that
// needs no valid JSON: it runs before the parser).
size_t json_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Json parse_json(const std::string& text, const std::string& source) {
  // Refuse absurd inputs before parsing.
  JNAS_CHECK_IO(text.size() < (size_t(1) << 30), "{}: JSON document too large ({} bytes)", source,
                text.size());
  // nlohmann's lexer reads a NUL byte as the end of the input, so "{...}\0anything" parsed as the
  // object alone. JSON text never holds a raw NUL (inside strings it is written \u0000).
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    throw IoError(fmt::format("{}: NUL byte at offset {} of {}: JSON text has none (bytes after the document, or "
                              "not a JSON file)",
                              source, nul, text.size()),
                  "the file is damaged or was written by something else; re-export or re-copy it");
  }
  JNAS_CHECK_IO(json_depth(text) <= kMaxJsonDepth, "{}: JSON nested deeper than {} levels", source,
                kMaxJsonDepth);
  // Duplicate keys: RFC 8259 leaves their meaning open, nlohmann keeps the last, safetensors and HF
  // tokenizers refuse them. A file that says two things about one key is refused here, for every
  // JSON file the tool reads. One set of keys per open object, innermost last.
  std::vector<std::unordered_set<std::string>> open_objects;
  std::string duplicate;
  bool has_duplicate = false;
  const Json::parser_callback_t on_event = [&](int, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == Json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == Json::parse_event_t::key && !open_objects.empty() && !has_duplicate) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
        has_duplicate = true;
      }
    }
    return true;
  };
  Json j = Json::parse(text, on_event, /*allow_exceptions=*/false);
  if (has_duplicate) {
    throw IoError(fmt::format("{}: duplicate key '{}': a JSON object may name each key once", source, duplicate),
                  "remove one of the two entries (which one was meant is not knowable)");
  }
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

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    // Sequence length and the allowed range of the second byte (RFC 3629, table 3-7 of Unicode):
    // E0 / F0 exclude overlong forms, ED excludes surrogates, F4 stops at U+10FFFF.
    size_t n = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n > s.size() - i) return i;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += n;
  }
  return std::nullopt;
}

Json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

std::optional<int64_t> get_int(const Json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const Json& v = j.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    // An integral value written as a float (4096.0). Range first: converting a double outside
    // int64 (1e300) is undefined behaviour, not an error. [-2^63, 2^63) is exactly representable.
    const double d = v.get<double>();
    if (d >= -0x1p63 && d < 0x1p63 && d == std::floor(d)) return static_cast<int64_t>(d);
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

bool has_format_tag(const Json& j, std::string_view tag) {
  if (!j.is_object()) return false;
  const auto it = j.find("format");
  return it != j.end() && it->is_string() && it->get_ref<const std::string&>() == tag;
}

std::string string_or(const Json& j, const char* key, const std::string& fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::vector<double> get_numbers(const Json& j, const char* key, const std::string& source) {
  std::vector<double> out;
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return out;
  const Json& v = j.at(key);
  JNAS_CHECK_IO(v.is_array(), "{}: '{}' must be a list of numbers", source, key);
  for (const Json& x : v) {
    JNAS_CHECK_IO(x.is_number() && std::isfinite(x.get<double>()), "{}: '{}' must hold finite numbers, got {}",
                  source, key, x.dump());
    out.push_back(x.get<double>());
  }
  return out;
}

}  // namespace jointnas
