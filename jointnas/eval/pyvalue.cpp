// Python value semantics over JSON (see pyvalue.h). References: CPython 3.11 Objects/unicodeobject.c
// (strip, split, repr), Objects/floatobject.c (repr), Lib/ast.py (literal_eval).
#include "jointnas/eval/pyvalue.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace jointnas::eval::py {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw PyError(msg); }

// Decodes one UTF-8 sequence at s[i]; invalid bytes decode as themselves (a lone byte, marked
// with bit 31 so they are never whitespace or letters) and advance by one.
uint32_t decode_at(const std::string& s, size_t i, size_t* n) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    *n = 1;
    return 0x80000000u | c;
  }
  uint32_t cp = len == 1 ? c : c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) {
      *n = 1;
      return 0x80000000u | c;
    }
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  *n = len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp & 0x80000000u) {
    out += static_cast<char>(cp & 0xFF);  // an invalid byte, kept as it was
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Simple case mapping: ASCII, Latin-1, Latin Extended-A pairs, Greek and Cyrillic basic letters
// (Python maps all of Unicode; task text outside these blocks keeps its case here).
uint32_t to_lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
      (c >= 0x410 && c <= 0x42F)) {
    return c + 32;
  }
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x17F) {
    const bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
  }
  return c;
}

uint32_t to_upper(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) ||
      (c >= 0x430 && c <= 0x44F)) {
    return c - 32;
  }
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if (c >= 0x100 && c <= 0x17F && to_lower(c) == c && c != 0x138 && c != 0x149 && c != 0x131 &&
      c != 0x17F) {
    const uint32_t u = c - 1;
    if (to_lower(u) == c) return u;
  }
  return c;
}

bool is_letter_like(uint32_t c) { return to_lower(c) != c || to_upper(c) != c; }

// Python's str.isprintable() approximated: C0/C1 controls, DEL, the non-space separators and the
// common format characters are not printable (repr escapes them).
bool printable(uint32_t c) {
  if (c & 0x80000000u) return false;
  if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xF8FF) ||
      (c >= 0xFFF9 && c <= 0xFFFB)) {
    return false;
  }
  return true;
}

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    size_t n = 0;
    const uint32_t c = decode_at(s, i, &n);
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c & 0x80000000u) {
      out += fmt::format("\\udc{:02x}", c & 0xFF);  // surrogateescape, as Python would hold it
    } else if (!printable(c)) {
      out += c < 0x100 ? fmt::format("\\x{:02x}", c)
             : c < 0x10000 ? fmt::format("\\u{:04x}", c) : fmt::format("\\U{:08x}", c);
    } else {
      out.append(s, i, n);
    }
    i += n;
  }
  out += quote;
  return out;
}

int64_t as_int(const Json& v, const char* what) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number_integer()) return v.get<int64_t>();
  fail(fmt::format("{} must be an integer, got {}", what, type_name(v)));
}

// ---------------------------------------------------------------- ast.literal_eval
struct LiteralParser {
  const std::string& t;
  size_t i = 0;

  [[noreturn]] void bad(const std::string& why) const {
    fail(fmt::format("ast.literal_eval: {} at offset {} of {}", why, i,
                     repr_string(t.size() > 200 ? t.substr(0, 200) + "..." : t)));
  }
  void ws() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < t.size() && t[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  Json parse_top() {
    Json v = value(0);
    ws();
    if (i != t.size()) bad("unexpected text");
    return v;
  }
  Json value(int depth) {
    if (depth > 64) bad("nesting deeper than 64");
    ws();
    if (i >= t.size()) bad("unexpected end");
    const char c = t[i];
    if (c == '[' || c == '(') return sequence(c == '[' ? ']' : ')', depth);
    if (c == '{') return mapping(depth);
    if (c == '\'' || c == '"') {
      std::string s = string_lit();
      while (true) {  // adjacent literals concatenate
        ws();
        if (i < t.size() && (t[i] == '\'' || t[i] == '"')) {
          s += string_lit();
        } else {
          break;
        }
      }
      return s;
    }
    if (c == '-' || c == '+') {
      ++i;
      Json v = value(depth + 1);
      if (!v.is_number() || v.is_boolean()) bad("unary sign on a non-number");
      if (c == '+') return v;
      if (v.is_number_float()) return -v.get<double>();
      return -v.get<int64_t>();
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    for (const auto& [word, val] : {std::pair<const char*, Json>{"True", true}, {"False", false},
                                    {"None", nullptr}}) {
      const size_t n = std::char_traits<char>::length(word);
      if (t.compare(i, n, word) == 0 &&
          (i + n == t.size() || !(std::isalnum(static_cast<unsigned char>(t[i + n])) || t[i + n] == '_'))) {
        i += n;
        return val;
      }
    }
    bad("not a literal");
  }
  Json sequence(char close, int depth) {
    ++i;
    Json out = Json::array();
    bool comma = true;
    while (!eat(close)) {
      if (!comma) bad("expected ',' or a closing bracket");
      out.push_back(value(depth + 1));
      comma = eat(',');
    }
    return out;
  }
  Json mapping(int depth) {
    ++i;
    Json out = Json::object();
    bool comma = true;
    while (!eat('}')) {
      if (!comma) bad("expected ',' or '}'");
      Json k = value(depth + 1);
      if (!eat(':')) bad("expected ':'");
      out[k.is_string() ? k.get<std::string>() : str(k)] = value(depth + 1);
      comma = eat(',');
    }
    return out;
  }
  Json number() {
    const size_t b = i;
    bool is_float = false;
    while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '.' ||
                            t[i] == '_' ||
                            ((t[i] == '+' || t[i] == '-') && (t[i - 1] == 'e' || t[i - 1] == 'E')))) {
      if (t[i] == '.' || t[i] == 'e' || t[i] == 'E') is_float = true;
      ++i;
    }
    std::string d = t.substr(b, i - b);
    d.erase(std::remove(d.begin(), d.end(), '_'), d.end());
    try {
      size_t used = 0;
      if (is_float) {
        const double v = std::stod(d, &used);
        if (used == d.size()) return v;
      } else {
        const long long v = std::stoll(d, &used, 10);
        if (used == d.size() && (d.size() == 1 || d[0] != '0')) return static_cast<int64_t>(v);
      }
    } catch (const std::exception&) {
    }
    bad("malformed number '" + d + "'");
  }
  uint32_t hex(size_t n) {
    if (i + n > t.size()) bad("truncated escape");
    uint32_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char h = t[i++];
      if (!std::isxdigit(static_cast<unsigned char>(h))) bad("bad hex escape");
      v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 32) - 'a' + 10);
    }
    return v;
  }
  std::string string_lit() {
    const char q = t[i];
    const bool triple = t.compare(i, 3, std::string(3, q)) == 0;
    i += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (i >= t.size()) bad("unterminated string");
      if (triple ? t.compare(i, 3, std::string(3, q)) == 0 : t[i] == q) {
        i += triple ? 3 : 1;
        return out;
      }
      const char c = t[i++];
      if (c == '\n' && !triple) bad("newline in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= t.size()) bad("trailing backslash");
      const char e = t[i++];
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': append_utf8(out, hex(2)); break;
        case 'u': append_utf8(out, hex(4)); break;
        case 'U': {
          const uint32_t cp = hex(8);
          if (cp > 0x10FFFF) bad("escape beyond U+10FFFF");
          append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < t.size() && t[i] >= '0' && t[i] <= '7'; ++k) v = v * 8 + (t[i++] - '0');
            append_utf8(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
  }
};

}  // namespace

const char* type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "NoneType";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "dict";
    default: return "object";
  }
}

bool truthy(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return v.get<bool>();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return v.get<int64_t>() != 0;
    case Json::value_t::number_float: return v.get<double>() != 0.0;
    case Json::value_t::string: return !v.get_ref<const std::string&>().empty();
    default: return !v.empty();
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: exponent form when the decimal exponent is
  // < -4 or >= 16, "e-05" with at least two exponent digits, and ".0" on integral values.
  std::string s = fmt::format("{}", d);
  const size_t e = s.find('e');
  std::string mant = e == std::string::npos ? s : s.substr(0, e);
  int exp10 = 0;
  if (e != std::string::npos) exp10 = std::stoi(s.substr(e + 1));
  // Normalize to digits + decimal exponent, then lay out as Python's repr does.
  std::string digits;
  int point = 0;  // position of the decimal point relative to the first digit
  const bool neg = !mant.empty() && mant[0] == '-';
  if (neg) mant.erase(0, 1);
  const size_t dot = mant.find('.');
  std::string intpart = dot == std::string::npos ? mant : mant.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : mant.substr(dot + 1);
  digits = intpart + frac;
  point = static_cast<int>(intpart.size()) + exp10;
  const size_t nz = digits.find_first_not_of('0');
  if (nz == std::string::npos) return neg ? "-0.0" : "0.0";
  point -= static_cast<int>(nz);
  digits.erase(0, nz);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int x = point - 1;  // scientific exponent
  std::string out = neg ? "-" : "";
  if (x < -4 || x >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", x < 0 ? '-' : '+', std::abs(x));
  } else if (point <= 0) {
    out += "0." + std::string(static_cast<size_t>(-point), '0') + digits;
  } else if (static_cast<size_t>(point) >= digits.size()) {
    out += digits + std::string(static_cast<size_t>(point) - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(point)) + "." + digits.substr(static_cast<size_t>(point));
  }
  return out;
}

std::string repr(const Json& v) {
  if (v.is_string()) return repr_string(v.get_ref<const std::string&>());
  if (v.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + repr(v[i]);
    return out + "]";
  }
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      out += (first ? "" : ", ") + repr_string(k) + ": " + repr(x);
      first = false;
    }
    return out + "}";
  }
  return str(v);
}

std::string str(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case Json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case Json::value_t::number_float: return float_repr(v.get<double>());
    case Json::value_t::string: return v.get<std::string>();
    default: return repr(v);
  }
}

bool equal(const Json& a, const Json& b) {
  const bool an = a.is_number() || a.is_boolean(), bn = b.is_number() || b.is_boolean();
  if (an && bn) {
    if (a.is_number_float() || b.is_number_float()) {
      const double x = a.is_boolean() ? a.get<bool>() : a.get<double>();
      const double y = b.is_boolean() ? b.get<bool>() : b.get<double>();
      return x == y;
    }
    return as_int(a, "") == as_int(b, "");
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!equal(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, x] : a.items()) {
      if (!b.contains(k) || !equal(x, b[k])) return false;
    }
    return true;
  }
  return a == b;
}

int compare(const Json& a, const Json& b) {
  const bool an = a.is_number() || a.is_boolean(), bn = b.is_number() || b.is_boolean();
  if (an && bn) {
    if (a.is_number_float() || b.is_number_float()) {
      const double x = a.is_boolean() ? a.get<bool>() : a.get<double>();
      const double y = b.is_boolean() ? b.get<bool>() : b.get<double>();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const int64_t x = as_int(a, ""), y = as_int(b, "");
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code point order.
    const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_array() && b.is_array()) {
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (!equal(a[i], b[i])) return compare(a[i], b[i]);
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
  }
  fail(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b)));
}

Json literal_eval(const std::string& text) {
  LiteralParser p{text};
  return p.parse_top();
}

bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0, n = 0; i < s.size(); i += n) out.push_back(decode_at(s, i, &n));
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) append_utf8(out, cps[i]);
  return out;
}

int64_t length(const std::string& s) { return static_cast<int64_t>(code_points(s).size()); }

bool is_digit_string(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string strip(const std::string& s, const std::optional<std::string>& chars, bool left,
                  bool right) {
  const auto cps = code_points(s);
  std::vector<uint32_t> set;
  if (chars) set = code_points(*chars);
  auto strippable = [&](uint32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_space(c);
  };
  size_t b = 0, e = cps.size();
  while (left && b < e && strippable(cps[b])) ++b;
  while (right && e > b && strippable(cps[e - 1])) --e;
  return from_code_points(cps, b, e);
}

std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("ValueError: empty separator");
    size_t i = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t j = s.find(*sep, i);
      if (j == std::string::npos) break;
      out.push_back(s.substr(i, j - i));
      i = j + sep->size();
    }
    out.push_back(s.substr(i));
    return out;
  }
  // Whitespace split: runs of whitespace separate, no empty strings.
  const auto cps = code_points(s);
  size_t i = 0;
  while (true) {
    while (i < cps.size() && is_space(cps[i])) ++i;
    if (i >= cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(from_code_points(cps, i, cps.size()));  // the rest keeps its trailing space
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_space(cps[j])) ++j;
    out.push_back(from_code_points(cps, i, j));
    i = j;
  }
  return out;
}

std::string replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every code point and at both ends
    const auto cps = code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < cps.size()) out += from_code_points(cps, i, i + 1);
    }
    return out;
  }
  size_t i = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
    ++done;
  }
  out.append(s, i, std::string::npos);
  return out;
}

std::string lower(const std::string& s) {
  std::string out;
  for (uint32_t c : code_points(s)) append_utf8(out, to_lower(c));
  return out;
}

std::string upper(const std::string& s) {
  std::string out;
  for (uint32_t c : code_points(s)) append_utf8(out, to_upper(c));
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (uint32_t c : code_points(s)) {
    append_utf8(out, first ? to_upper(c) : to_lower(c));
    first = false;
  }
  return out;
}

std::string title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : code_points(s)) {
    append_utf8(out, prev_cased ? to_lower(c) : to_upper(c));
    prev_cased = is_letter_like(c);
  }
  return out;
}

Json slice(const Json& v, std::optional<int64_t> start, std::optional<int64_t> stop,
           std::optional<int64_t> step) {
  const int64_t st = step.value_or(1);
  if (st == 0) fail("ValueError: slice step cannot be zero");
  std::vector<uint32_t> cps;
  int64_t n = 0;
  if (v.is_string()) {
    cps = code_points(v.get_ref<const std::string&>());
    n = static_cast<int64_t>(cps.size());
  } else if (v.is_array()) {
    n = static_cast<int64_t>(v.size());
  } else {
    fail(fmt::format("TypeError: '{}' object is not subscriptable", type_name(v)));
  }
  // CPython PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> x, int64_t dflt) {
    if (!x) return dflt;
    int64_t i = *x;
    if (i < 0) {
      i += n;
      if (i < 0) i = st < 0 ? -1 : 0;
    } else if (i >= n) {
      i = st < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t b = adjust(start, st < 0 ? n - 1 : 0);
  const int64_t e = adjust(stop, st < 0 ? -1 : n);
  std::vector<int64_t> idx;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) idx.push_back(i);
  if (v.is_string()) {
    std::string out;
    for (int64_t i : idx) append_utf8(out, cps[static_cast<size_t>(i)]);
    return out;
  }
  Json out = Json::array();
  for (int64_t i : idx) out.push_back(v[static_cast<size_t>(i)]);
  return out;
}

Json subscript(const Json& v, const Json& key) {
  if (v.is_object()) {
    const std::string k = key.is_string() ? key.get<std::string>() : str(key);
    auto it = v.find(k);
    if (it == v.end()) fail(fmt::format("KeyError: {}", repr(key)));
    return *it;
  }
  if (!v.is_string() && !v.is_array()) {
    fail(fmt::format("TypeError: '{}' object is not subscriptable", type_name(v)));
  }
  if (!(key.is_number_integer() || key.is_boolean())) {
    fail(fmt::format("TypeError: {} indices must be integers, not {}", type_name(v), type_name(key)));
  }
  int64_t i = as_int(key, "index");
  if (v.is_string()) {
    const auto cps = code_points(v.get_ref<const std::string&>());
    const int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) fail("IndexError: string index out of range");
    return from_code_points(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1);
  }
  const int64_t n = static_cast<int64_t>(v.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) fail("IndexError: list index out of range");
  return v[static_cast<size_t>(i)];
}

}  // namespace jointnas::eval::py
