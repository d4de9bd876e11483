// PCRE2-backed regex splitting; see regex_splitter.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "jointnas/tokenizer/regex_splitter.h"

#include <pcre2.h>

#include <memory>

#include "jointnas/core/error.h"

namespace jointnas::tok {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Length of the UTF-8 sequence starting at text[i]; 1 for a stray byte so that we always move on.
size_t utf8_step(std::string_view text, size_t i) {
  const auto c = static_cast<uint8_t>(text[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  size_t j = i + 1;
  while (j < text.size() && j < i + n && (static_cast<uint8_t>(text[j]) & 0xC0) == 0x80) ++j;
  return j - i;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* c) const { pcre2_match_context_free(c); }
};

}  // namespace

RegexSplitter::RegexSplitter(const std::string& pattern, SplitBehavior behavior, bool invert,
                             const std::string& source)
    : behavior_(behavior), invert_(invert) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  // MATCH_INVALID_UTF: text is raw bytes from the caller; invalid UTF-8 never matches any item
  // (it ends up in a gap piece and is byte-encoded) instead of failing the whole match.
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  if (code == nullptr) {
    throw IoError(
        fmt::format("{}: pre-tokenizer regex does not compile at offset {}: {} (pattern "
                    "'{}')",
                    source, err_offset, pcre2_message(err), pattern));
  }
  // The JIT is ~10x faster than the interpreter; when unavailable the interpreter still works.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(code, nullptr));
  // A JIT stack larger than the 32 KiB default: lookaheads over long whitespace runs need it.
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> ctx(
      pcre2_match_context_create(nullptr));
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> stack(
      pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr));
  if (ctx && stack) pcre2_jit_stack_assign(ctx.get(), nullptr, stack.get());

  // Segments in order: (begin, end, is_match). Matches and the gaps between them.
  const size_t first_out = out.size();  // never merge into pieces of an earlier call
  auto emit = [&](size_t b, size_t e, bool is_match, std::string_view& pending) {
    if (b == e) return;
    std::string_view piece = text.substr(b, e - b);
    if (invert_) is_match = !is_match;
    switch (behavior_) {
      case SplitBehavior::kIsolated:
        out.push_back(piece);
        break;
      case SplitBehavior::kRemoved:
        if (!is_match) out.push_back(piece);
        break;
      case SplitBehavior::kMergedWithPrevious:
        // A match joins the piece before it; pieces are adjacent, so widen the last view.
        if (is_match && out.size() > first_out &&
            out.back().data() + out.back().size() == piece.data()) {
          out.back() = std::string_view(out.back().data(), out.back().size() + piece.size());
        } else {
          out.push_back(piece);
        }
        break;
      case SplitBehavior::kMergedWithNext:
        // A match waits for the piece after it.
        if (is_match) {
          pending = pending.empty()
                        ? piece
                        : std::string_view(pending.data(), pending.size() + piece.size());
        } else {
          out.push_back(pending.empty()
                            ? piece
                            : std::string_view(pending.data(), pending.size() + piece.size()));
          pending = {};
        }
        break;
    }
  };

  std::string_view pending;
  size_t pos = 0;   // where the next search starts
  size_t last = 0;  // end of the previous match
  while (pos < text.size()) {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0,
                         md.get(), ctx.get());
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT) {
      rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                       PCRE2_NO_JIT, md.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw Error(fmt::format("tokenizer pre-tokenizer regex failed at byte {} of {}: {}", pos,
                              text.size(), pcre2_message(rc)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match splits nothing; search again one character later
      pos = b + utf8_step(text, b);
      continue;
    }
    emit(last, b, false, pending);
    emit(b, e, true, pending);
    last = pos = e;
  }
  emit(last, text.size(), false, pending);
  if (!pending.empty()) out.push_back(pending);
}

}  // namespace jointnas::tok
