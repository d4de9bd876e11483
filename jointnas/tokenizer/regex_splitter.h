// Pre-tokenizer regexes (HF `Split` / GPT-2 `ByteLevel(use_regex)` / tiktoken pat_str) on PCRE2.
// PCRE2 with UTF + UCP understands \p{L}, \p{N}, (?i:...) and (?!\S) exactly as the
// fancy-regex / Oniguruma engines behind tiktoken and HF tokenizers do.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace jointnas::tok {

// The two patterns every byte-level BPE here uses.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// What happens to the matched parts, named as HF tokenizers' SplitDelimiterBehavior.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };

// One compiled regex split step. Thread-safe: the compiled code is shared, match state is per call.
class RegexSplitter {
 public:
  // Throws IoError naming `source` (the file the pattern came from) when it does not compile.
  RegexSplitter(const std::string& pattern, SplitBehavior behavior, bool invert,
                const std::string& source);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` to `out` (views into `text`; empty pieces are dropped).
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so the header needs no pcre2.h
  SplitBehavior behavior_;
  bool invert_;
};

}  // namespace jointnas::tok
