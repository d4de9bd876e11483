// Block-wise document splitting and tokenization of text files (text_stream.h).
#include "jointnas/eval/text_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <c10/core/InferenceMode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/machine.h"
#include "jointnas/core/paths.h"

namespace jointnas::eval {
namespace {

// split_documents' rule: a paragraph longer than this falls back to one document per line.
constexpr uint64_t kLongParagraphBytes = 20000;

bool is_blank_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

// The text (a file read with pread into one block, or a view of memory) and the split's state.
struct DocumentReader::Impl {
  std::string path;  // empty for text in memory
  int fd = -1;
  std::string_view mem;
  uint64_t size = 0;
  size_t block = DocumentReader::kDefaultBlockBytes;
  std::string buf;          // the cached block of a file
  uint64_t buf_at = 0;      // its offset
  enum class Mode { kParagraphs, kLines, kWhole } mode = Mode::kParagraphs;
  uint64_t pos = 0;         // start of the next piece
  bool done = false;
  bool in_long = false;     // splitting a long paragraph into lines
  uint64_t line_at = 0, long_end = 0;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  // Bytes [off, off + n) (n <= block), valid until the next call.
  std::string_view view(uint64_t off, size_t n) {
    n = static_cast<size_t>(std::min<uint64_t>(n, size - std::min(off, size)));
    if (fd < 0) return mem.substr(static_cast<size_t>(off), n);
    if (off < buf_at || off + n > buf_at + buf.size()) {
      buf.resize(std::min<uint64_t>(std::max(block, n), size - off));
      size_t got = 0;
      while (got < buf.size()) {
        const ssize_t r = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          throw IoError(fmt::format("error reading '{}' at byte {}: {}", path, off + got,
                                    r == 0 ? "the file shrank while it was read" : std::strerror(errno)));
        }
        got += static_cast<size_t>(r);
      }
      buf_at = off;
    }
    return std::string_view(buf).substr(static_cast<size_t>(off - buf_at), n);
  }

  // First '\n' in [from, to), or `to`.
  uint64_t find_newline(uint64_t from, uint64_t to) {
    for (uint64_t at = from; at < to;) {
      const std::string_view v = view(at, static_cast<size_t>(std::min<uint64_t>(block, to - at)));
      if (const void* hit = std::memchr(v.data(), '\n', v.size())) {
        return at + static_cast<uint64_t>(static_cast<const char*>(hit) - v.data());
      }
      at += v.size();
    }
    return to;
  }

  // First j >= from with "\n\n" at [j, j + 2) (std::string::find("\n\n", from)), or `size`.
  uint64_t find_blank_line(uint64_t from) {
    for (uint64_t j = find_newline(from, size); j + 1 < size; j = find_newline(j + 1, size)) {
      if (view(j + 1, 1)[0] == '\n') return j;
    }
    return size;
  }

  bool blank(const DocumentRange& r) {
    for (uint64_t at = r.begin; at < r.end;) {
      const std::string_view v = view(at, static_cast<size_t>(std::min<uint64_t>(block, r.end - at)));
      for (char c : v) {
        if (!is_blank_byte(c)) return false;
      }
      at += v.size();
    }
    return true;
  }
};

DocumentReader::DocumentReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DocumentReader::~DocumentReader() = default;
DocumentReader::DocumentReader(DocumentReader&&) noexcept = default;
DocumentReader& DocumentReader::operator=(DocumentReader&&) noexcept = default;

namespace {

void set_mode(DocumentReader::Impl& d, const std::string& mode) {
  using Mode = DocumentReader::Impl::Mode;
  if (mode == "paragraphs") {
    d.mode = Mode::kParagraphs;
  } else if (mode == "lines") {
    d.mode = Mode::kLines;
  } else if (mode == "whole") {
    d.mode = Mode::kWhole;
  } else {
    throw ConfigError(fmt::format("unknown documents mode '{}': expected paragraphs, lines or whole", mode));
  }
}

}  // namespace

DocumentReader::DocumentReader(const std::string& path, const std::string& mode, size_t block_bytes)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  set_mode(d, mode);
  d.path = path;
  d.block = std::max<size_t>(block_bytes, 1);
  // O_NONBLOCK: a FIFO is refused for what it is, never waited on.
  d.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (d.fd < 0) throw IoError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(d.fd, &st) != 0 || !S_ISREG(st.st_mode)) require_regular_file(path, "the text file");
  d.size = static_cast<uint64_t>(st.st_size);
}

DocumentReader DocumentReader::of_text(std::string_view text, const std::string& mode, size_t block_bytes) {
  auto d = std::make_unique<Impl>();
  set_mode(*d, mode);
  d->mem = text;
  d->size = text.size();
  d->block = std::max<size_t>(block_bytes, 1);
  return DocumentReader(std::move(d));
}

bool DocumentReader::next(DocumentRange& doc) {
  using Mode = Impl::Mode;
  Impl& d = *impl_;
  while (true) {
    if (d.in_long) {
      // The lines of a long paragraph, the last one the rest after its final '\n'.
      if (d.line_at > d.long_end) {
        d.in_long = false;
        continue;
      }
      const uint64_t j = d.find_newline(d.line_at, d.long_end);
      const DocumentRange r{d.line_at, j};
      d.line_at = j + 1;
      if (!d.blank(r)) {
        doc = r;
        return true;
      }
      continue;
    }
    if (d.done) return false;
    DocumentRange piece{d.pos, d.size};
    if (d.mode == Mode::kWhole) {
      d.done = true;
    } else {
      const uint64_t j = d.mode == Mode::kLines ? d.find_newline(d.pos, d.size) : d.find_blank_line(d.pos);
      piece.end = j;
      if (j >= d.size) {
        d.done = true;
      } else {
        d.pos = j + (d.mode == Mode::kLines ? 1 : 2);
      }
      if (d.mode == Mode::kParagraphs && piece.end - piece.begin > kLongParagraphBytes) {
        d.in_long = true;
        d.line_at = piece.begin;
        d.long_end = piece.end;
        continue;
      }
    }
    if (!d.blank(piece)) {
      doc = piece;
      return true;
    }
  }
}

void DocumentReader::for_each_piece(const DocumentRange& r, const std::function<void(std::string_view)>& fn) {
  for (uint64_t at = r.begin; at < r.end;) {
    const std::string_view v = impl_->view(at, static_cast<size_t>(std::min<uint64_t>(impl_->block, r.end - at)));
    fn(v);
    at += v.size();
  }
}

std::string DocumentReader::read(const DocumentRange& r) {
  std::string out;
  for_each_piece(r, [&](std::string_view v) { out.append(v); });
  return out;
}

uint64_t DocumentReader::size() const { return impl_->size; }

uint64_t DocumentReader::position() const {
  // Inside a long paragraph the split has passed its lines up to line_at, even when the paragraph
  // is the file's last piece (done).
  if (impl_->in_long) return std::min(impl_->line_at, impl_->size);
  return impl_->done ? impl_->size : std::min(impl_->pos, impl_->size);
}

// ---- tokens ----

TokenStream::TokenStream(const std::string& path, const tok::Tokenizer& tok, const PplProtocol& p, int64_t bos_id,
                         int64_t eos_id)
    : path_(path), reader_(path, p.documents), encoder_(tok), p_(p), bos_(bos_id), eos_(eos_id) {
  JNAS_CHECK_CONFIG(!p.add_bos || bos_id >= 0, "the protocol adds BOS but the tokenizer has none");
  JNAS_CHECK_CONFIG(!p.add_eos || eos_id >= 0, "the protocol adds EOS but the tokenizer has none");
}

bool TokenStream::next(std::vector<int64_t>& out) {
  const size_t before = out.size();
  if (!in_doc_) {
    if (!reader_.next(doc_)) return false;
    in_doc_ = true;
    at_ = doc_.begin;
    ++documents_;
    if (p_.add_bos) out.push_back(bos_);
  }
  const uint64_t end = std::min<uint64_t>(doc_.end, at_ + DocumentReader::kDefaultBlockBytes);
  ids_.clear();
  reader_.for_each_piece({at_, end}, [&](std::string_view v) { encoder_.feed(v, ids_); });
  at_ = end;
  if (at_ >= doc_.end) {
    encoder_.finish(ids_);
    in_doc_ = false;
  }
  out.insert(out.end(), ids_.begin(), ids_.end());
  if (!in_doc_ && p_.add_eos) out.push_back(eos_);
  tokens_ += static_cast<int64_t>(out.size() - before);
  return true;
}

double TokenStream::fraction_read() const {
  const uint64_t n = reader_.size();
  if (n == 0) return 1.0;
  const uint64_t at = in_doc_ ? at_ : reader_.position();
  return std::min(1.0, static_cast<double>(at) / static_cast<double>(n));
}

std::vector<int64_t> read_token_stream(const std::string& path, const tok::Tokenizer& tok, const PplProtocol& p,
                                       int64_t bos_id, int64_t eos_id, int64_t max_tokens) {
  JNAS_CHECK_CONFIG(max_tokens >= 0, "the token limit must be >= 0 (0: the whole file), got {}", max_tokens);
  TokenStream ts(path, tok, p, bos_id, eos_id);
  std::vector<int64_t> stream;
  size_t checked = 0;  // capacity already checked against the machine's memory
  while (ts.next(stream)) {
    if (max_tokens > 0 && static_cast<int64_t>(stream.size()) >= max_tokens) {
      stream.resize(static_cast<size_t>(max_tokens));
      break;
    }
    if (stream.capacity() > checked) {
      // The next doubling of the vector, before it happens.
      check_memory_fits(saturating_mul(2 * stream.capacity(), sizeof(int64_t)),
                        fmt::format("the token stream of '{}'", path), "the text (or pass a token limit)");
      checked = stream.capacity();
    }
  }
  stream.shrink_to_fit();
  return stream;
}

FilePplResult perplexity_of_file(const model::LlamaModel& model, const std::string& path, const tok::Tokenizer& tok,
                                 const PplProtocol& p, int64_t bos_id, int64_t eos_id,
                                 const std::function<void(int64_t, double)>& progress,
                                 const model::LlamaModel* teacher) {
  const LlamaWindowModel runtime(model, p, teacher);  // the window and its memory, checked before any read
  return perplexity_of_file(runtime, path, tok, p, bos_id, eos_id, progress);
}

FilePplResult perplexity_of_file(const WindowModel& model, const std::string& path, const tok::Tokenizer& tok,
                                 const PplProtocol& p, int64_t bos_id, int64_t eos_id,
                                 const std::function<void(int64_t, double)>& progress) {
  WindowScorer scorer(model, p);      // the protocol and the window, checked before any read
  c10::InferenceMode inference_mode;       // no autograd records, no version counters
  TokenStream ts(path, tok, p, bos_id, eos_id);
  std::vector<int64_t> chunk;
  int64_t reported = 0;
  bool more = true;
  while (!scorer.full() && (more = ts.next(chunk))) {
    scorer.add(chunk.data(), chunk.size());
    chunk.clear();
    if (progress && scorer.windows_scored() != reported) {
      reported = scorer.windows_scored();
      progress(reported, ts.fraction_read());
    }
  }
  FilePplResult out;
  out.result = scorer.finish(ts.tokens());
  out.result.documents = ts.documents();
  out.complete = !more || ts.fraction_read() >= 1.0;
  if (progress) progress(out.result.windows, ts.fraction_read());
  return out;
}

}  // namespace jointnas::eval
