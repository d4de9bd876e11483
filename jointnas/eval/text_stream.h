// Text files read in bounded blocks: documents as the perplexity protocols split them, and their
// token stream, produced as the file is read. A file of any size, or a line of any length, costs
// a few blocks of memory, never the whole text (a 1 GB one-line file used to ask for 24 GiB).
// The documents and tokens are exactly those of split_documents + build_stream on the whole text.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jointnas/eval/perplexity.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::eval {

// A document: bytes [begin, end) of the text.
struct DocumentRange {
  uint64_t begin = 0;
  uint64_t end = 0;
};

// The documents of a text under a PplProtocol::documents mode ("paragraphs", "lines", "whole"),
// found by scanning the text a block at a time.
class DocumentReader {
 public:
  static constexpr size_t kDefaultBlockBytes = size_t(1) << 20;
  // A file (refused with an IoError naming it when it is missing, not a regular file or
  // unreadable), or text already in memory (which must outlive the reader).
  DocumentReader(const std::string& path, const std::string& mode, size_t block_bytes = kDefaultBlockBytes);
  static DocumentReader of_text(std::string_view text, const std::string& mode,
                                size_t block_bytes = kDefaultBlockBytes);
  ~DocumentReader();
  DocumentReader(DocumentReader&&) noexcept;
  DocumentReader& operator=(DocumentReader&&) noexcept;

  // The next non-blank document; false after the last.
  bool next(DocumentRange& doc);
  // Calls fn on successive pieces (at most a block each) of `r`.
  void for_each_piece(const DocumentRange& r, const std::function<void(std::string_view)>& fn);
  // The whole range as a string (tests and small documents).
  std::string read(const DocumentRange& r);
  uint64_t size() const;
  // Bytes of the text the split has passed (for progress).
  uint64_t position() const;

  struct Impl;  // the text and the split's state (text_stream.cpp)

 private:
  explicit DocumentReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The token stream of a text under a protocol: per document BOS (when add_bos), its ids (from a
// tok::ChunkedEncoder), EOS (when add_eos). Reads and tokenizes as it is asked for tokens.
class TokenStream {
 public:
  TokenStream(const std::string& path, const tok::Tokenizer& tok, const PplProtocol& p, int64_t bos_id,
              int64_t eos_id);
  // Appends the next tokens (those of at most one block of text) to `out`; false at the end.
  bool next(std::vector<int64_t>& out);
  int64_t documents() const { return documents_; }
  int64_t tokens() const { return tokens_; }
  // Fraction of the file read, in [0, 1].
  double fraction_read() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  DocumentReader reader_;
  tok::ChunkedEncoder encoder_;
  PplProtocol p_;
  int64_t bos_, eos_;
  bool in_doc_ = false;
  DocumentRange doc_;
  uint64_t at_ = 0;  // next byte of the current document
  int64_t documents_ = 0, tokens_ = 0;
  std::vector<int32_t> ids_;
};

// The token stream of a file as one vector (calibration and training text), stopping after
// `max_tokens` tokens when > 0: the rest of the file is never read. The vector is checked
// against the machine's memory before each time it grows.
std::vector<int64_t> read_token_stream(const std::string& path, const tok::Tokenizer& tok, const PplProtocol& p,
                                       int64_t bos_id, int64_t eos_id, int64_t max_tokens);

// perplexity() of a text file, scored as it streams: the memory is that of one batch of windows
// and one block of text, whatever the file's size. Equal, bit for bit, to perplexity() of
// build_stream(split_documents(text)). Reading stops once max_windows windows are had, so
// `documents` and `stream_tokens` then count the part of the file read (`complete` false).
// `progress(windows_scored, fraction_of_file_read)` is called after each batch.
struct FilePplResult {
  PplResult result;
  bool complete = true;  // the whole file was read
};
FilePplResult perplexity_of_file(const model::LlamaModel& model, const std::string& path, const tok::Tokenizer& tok,
                                 const PplProtocol& p, int64_t bos_id, int64_t eos_id,
                                 const std::function<void(int64_t, double)>& progress = {},
                                 const model::LlamaModel* teacher = nullptr);
// The same with any runtime's WindowModel (llama.cpp: pipeline/ppl_llamacpp.cpp) and its tokenizer.
FilePplResult perplexity_of_file(const WindowModel& model, const std::string& path, const tok::Tokenizer& tok,
                                 const PplProtocol& p, int64_t bos_id, int64_t eos_id,
                                 const std::function<void(int64_t, double)>& progress = {});

}  // namespace jointnas::eval
