// Python re.sub through PCRE2 (see pyre.h). Reference: CPython 3.11 Lib/re/_parser.py
// parse_template (replacement escapes), Modules/_sre/sre.c pattern_subx (empty matches).
#include "jointnas/eval/pyre.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval::py {
namespace {

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using Code = std::shared_ptr<pcre2_code>;

// Compiled patterns are cached: the hooks run the same few patterns over every document.
Code compile(const std::string& pattern) {
  static std::mutex mu;
  static std::map<std::string, Code> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(pattern); it != cache.end()) return it->second;
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
  if (re == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw PyError(fmt::format("re.error: {} at position {} of pattern {}",
                              reinterpret_cast<const char*>(buf), off, repr(Json(pattern))));
  }
  Code code(re, CodeDeleter());
  if (cache.size() < 1024) cache.emplace(pattern, code);
  return code;
}

// One piece of a parsed replacement: literal text or a group reference.
struct ReplPiece {
  std::string text;
  int group = -1;
};

std::vector<ReplPiece> parse_repl(const std::string& repl, pcre2_code* re) {
  uint32_t groups = 0;
  pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
  std::vector<ReplPiece> out(1);
  auto group_ref = [&](int g) {
    if (g < 0 || static_cast<uint32_t>(g) > groups) throw PyError(fmt::format("re.error: invalid group reference {}", g));
    out.push_back({"", g});
    out.push_back({});
  };
  for (size_t i = 0; i < repl.size(); ++i) {
    const char c = repl[i];
    if (c != '\\' || i + 1 == repl.size()) {
      if (c == '\\') throw PyError("re.error: bad escape (end of pattern)");
      out.back().text += c;
      continue;
    }
    const char e = repl[++i];
    if (e == 'g') {
      const size_t close = repl.find('>', i);
      if (i + 1 >= repl.size() || repl[i + 1] != '<' || close == std::string::npos) {
        throw PyError("re.error: missing < or > in \\g<...>");
      }
      const std::string name = repl.substr(i + 2, close - i - 2);
      int g = -1;
      if (is_digit_string(name) && name.size() < 6) {
        g = std::stoi(name);
      } else {
        g = pcre2_substring_number_from_name(re, reinterpret_cast<PCRE2_SPTR>(name.c_str()));
        if (g < 0) throw PyError(fmt::format("IndexError: unknown group name '{}'", name));
      }
      group_ref(g);
      i = close;
    } else if (e >= '0' && e <= '9') {
      int g = e - '0';
      if (i + 1 < repl.size() && repl[i + 1] >= '0' && repl[i + 1] <= '9') g = g * 10 + (repl[++i] - '0');
      group_ref(g);
    } else {
      static const std::map<char, char> kEsc = {{'n', '\n'}, {'t', '\t'}, {'r', '\r'}, {'a', '\a'},
                                                {'b', '\b'}, {'f', '\f'}, {'v', '\v'}, {'\\', '\\'}};
      auto it = kEsc.find(e);
      if (it != kEsc.end()) {
        out.back().text += it->second;
      } else if (std::isalpha(static_cast<unsigned char>(e))) {
        throw PyError(fmt::format("re.error: bad escape \\{}", e));
      } else {
        out.back().text += '\\';  // Python keeps unknown non-letter escapes as they are
        out.back().text += e;
      }
    }
  }
  return out;
}

// Calls on_match(ovector, rc) for each match as re.finditer yields them (Python 3.7+ rules for
// empty matches), up to `count` matches when count > 0.
template <typename F>
void for_each_match(pcre2_code* re, const std::string& s, int64_t count, F on_match) {
  std::unique_ptr<pcre2_match_data, MatchDeleter> md(pcre2_match_data_create_from_pattern(re, nullptr));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  int64_t done = 0;
  uint32_t options = 0;
  while (pos <= s.size() && (count <= 0 || done < count)) {
    const int rc = pcre2_match(re, subject, s.size(), pos, options, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0) break;
      // No non-empty match at an empty match's position: move one code point on.
      options = 0;
      size_t n = 1;
      while (pos + n < s.size() && (static_cast<unsigned char>(s[pos + n]) & 0xC0) == 0x80) ++n;
      pos += n;
      continue;
    }
    if (rc < 0) throw PyError(fmt::format("re.error: match failed ({})", rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    on_match(ov, rc);
    ++done;
    pos = ov[1];
    // After an empty match, the next match may not be empty at the same place.
    options = ov[0] == ov[1] ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
  }
}

}  // namespace

std::string re_sub(const std::string& pattern, const std::string& repl, const std::string& s,
                   int64_t count) {
  Code code = compile(pattern);
  const std::vector<ReplPiece> pieces = parse_repl(repl, code.get());
  std::string out;
  size_t copied = 0;
  for_each_match(code.get(), s, count, [&](const PCRE2_SIZE* ov, int rc) {
    out.append(s, copied, ov[0] - copied);
    for (const auto& p : pieces) {
      if (p.group < 0) {
        out += p.text;
      } else if (p.group < rc && ov[2 * p.group] != PCRE2_UNSET) {
        out.append(s, ov[2 * p.group], ov[2 * p.group + 1] - ov[2 * p.group]);
      }
    }
    copied = ov[1];
  });
  out.append(s, copied, std::string::npos);
  return out;
}

std::vector<std::string> re_split(const std::string& pattern, const std::string& s) {
  Code code = compile(pattern);
  std::vector<std::string> out;
  size_t copied = 0;
  for_each_match(code.get(), s, 0, [&](const PCRE2_SIZE* ov, int) {
    out.push_back(s.substr(copied, ov[0] - copied));
    copied = ov[1];
  });
  out.push_back(s.substr(copied));
  return out;
}

}  // namespace jointnas::eval::py
