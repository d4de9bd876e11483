// Python semantics over JSON values, for lm-eval's task templates and hooks: the values a Jinja
// template sees (None, bool, int, float, str, list, dict) are nlohmann JSON values, and this file
// gives them Python's str(), repr(), truthiness, equality and ordering, the str methods the
// standard tasks call (strip, split, ...) and ast.literal_eval, which lm-eval applies to rendered
// doc_to_choice / doc_to_target templates. Torch-free. Errors are PyError (a ConfigError); the
// template engine adds the task file and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"

namespace jointnas::eval::py {

// A Python TypeError / ValueError / IndexError / KeyError raised while evaluating a template.
class PyError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// Python type name of a value ("NoneType", "bool", "int", "float", "str", "list", "dict").
const char* type_name(const Json& v);

bool truthy(const Json& v);
std::string str(const Json& v);   // Python str()
std::string repr(const Json& v);  // Python repr() (non-ASCII printability approximated, see .cpp)
std::string float_repr(double d);
bool equal(const Json& a, const Json& b);  // Python ==: 1 == 1.0 == True
int compare(const Json& a, const Json& b);  // <0, 0, >0 for <, ==, > (TypeError when unordered)

// ast.literal_eval of the subset a rendered template produces: str (all Python escapes),
// int, float, True / False / None, lists, tuples (as lists), dicts, unary minus. Throws PyError
// naming the text.
Json literal_eval(const std::string& text);

// Unicode helpers over UTF-8 (invalid bytes count as one code point each, never as whitespace).
bool is_space(uint32_t cp);  // Python str.isspace()
std::vector<uint32_t> code_points(const std::string& s);
std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end);
int64_t length(const std::string& s);  // len(str): code points
bool is_digit_string(const std::string& s);  // str.isdigit() for ASCII digits, non-empty

// str methods (Python 3.11). `chars` nullopt = whitespace.
std::string strip(const std::string& s, const std::optional<std::string>& chars = std::nullopt,
                  bool left = true, bool right = true);
std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep,
                               int64_t maxsplit = -1);
std::string replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count = -1);
std::string lower(const std::string& s);       // ASCII and Latin-1 / Greek / Cyrillic basics
std::string upper(const std::string& s);
std::string capitalize(const std::string& s);  // first upper, rest lower
std::string title(const std::string& s);
// Python slicing of a str (code points) or list with optional start / stop / step.
Json slice(const Json& v, std::optional<int64_t> start, std::optional<int64_t> stop,
           std::optional<int64_t> step);
// v[i] for str / list (negative from the end) and dict keys.
Json subscript(const Json& v, const Json& key);

}  // namespace jointnas::eval::py
