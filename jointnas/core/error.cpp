// Anchors the vtables of the error types in one translation unit; bounds their messages.
#include "jointnas/core/error.h"

namespace jointnas {
namespace {

// Moves `i` back to the start of the UTF-8 sequence it is in (never cut a character in two).
size_t char_start(const std::string& s, size_t i) {
  while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

std::string bound_message(std::string text) {
  if (text.size() <= kMaxErrorMessageBytes) return text;
  // Two thirds for the start (file and key), one third for the end (what is wrong).
  const size_t head = char_start(text, kMaxErrorMessageBytes * 2 / 3);
  const size_t tail = char_start(text, text.size() - kMaxErrorMessageBytes / 3);
  return text.substr(0, head) + fmt::format(" [... {} bytes omitted ...] ", tail - head) + text.substr(tail);
}

}  // namespace jointnas
