// ChunkedEncoder: documents of any length tokenized a bounded chunk at a time (tokenizer.h).
#include <algorithm>

#include "jointnas/core/log.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace {

bool printable_ascii(char c) { return c > ' ' && c < 0x7F; }

// The cut (an index c, the chunk being [0, c)) at most `limit`: the last space with printable
// ASCII characters on both sides, or 0 when there is none.
size_t safe_cut(std::string_view s, size_t limit) {
  for (size_t c = std::min(limit, s.size() - 2); c >= 1; --c) {
    if (s[c] == ' ' && printable_ascii(s[c - 1]) && printable_ascii(s[c + 1])) return c;
  }
  return 0;
}

// The last character boundary at most `limit` (never inside a UTF-8 sequence), at least 1.
size_t char_cut(std::string_view s, size_t limit) {
  size_t c = limit;
  while (c > 1 && (static_cast<unsigned char>(s[c]) & 0xC0) == 0x80) --c;
  return c;
}

}  // namespace

ChunkedEncoder::ChunkedEncoder(const Tokenizer& tok, size_t chunk_bytes, bool parse_special)
    : tok_(tok), chunk_bytes_(std::max<size_t>(chunk_bytes, 16)), parse_special_(parse_special) {}

void ChunkedEncoder::encode_chunk(std::string_view chunk, std::vector<int32_t>& out) {
  const std::vector<int32_t> ids =
      started_ ? tok_.encode_continuation(chunk, parse_special_) : tok_.encode(chunk, parse_special_);
  out.insert(out.end(), ids.begin(), ids.end());
  started_ = true;
}

void ChunkedEncoder::feed(std::string_view bytes, std::vector<int32_t>& out) {
  pending_.append(bytes);
  // Cut while more than a chunk is pending (plus the one byte after a cut that decides it).
  size_t start = 0;
  while (pending_.size() - start > chunk_bytes_ + 1) {
    const std::string_view rest = std::string_view(pending_).substr(start);
    size_t c = safe_cut(rest, chunk_bytes_);
    if (c == 0) {
      c = char_cut(rest, chunk_bytes_);
      if (forced_cuts_++ == 0) {
        JNAS_LOG_WARN("a text of more than {} bytes without a space between printable characters: it is tokenized "
                      "in pieces of at most {} bytes, and the tokens at the cuts may differ from those of the "
                      "whole text",
                      chunk_bytes_, chunk_bytes_);
      }
    }
    encode_chunk(rest.substr(0, c), out);
    start += c;
  }
  pending_.erase(0, start);
}

void ChunkedEncoder::finish(std::vector<int32_t>& out) {
  if (!pending_.empty()) encode_chunk(pending_, out);
  pending_.clear();
  started_ = false;
}

}  // namespace jointnas::tok
