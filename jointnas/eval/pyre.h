// Python's re.sub / re.search over UTF-8 text through PCRE2 (UTF + UCP, so \s, \w and \d are
// Unicode-aware as in Python 3's str patterns). Used by lm-eval's regex_replace template filter
// and the standard tasks' hooks (wikitext detokenizer, hellaswag preprocess). Differences from
// Python's engine that these uses never meet: \s does not match U+001C..U+001F here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace jointnas::eval::py {

// re.sub(pattern, repl, s, count): Python's replacement syntax (\1 .. \99, \g<name>, \g<1>,
// \n \t \\ ...), Python 3.7+ handling of empty matches. A bad pattern or a reference to a group
// that does not exist is a PyError.
std::string re_sub(const std::string& pattern, const std::string& repl, const std::string& s,
                   int64_t count = 0);

// re.split(pattern, s) for a pattern without groups: the pieces between matches (empty ones at
// the ends included).
std::vector<std::string> re_split(const std::string& pattern, const std::string& s);

}  // namespace jointnas::eval::py
