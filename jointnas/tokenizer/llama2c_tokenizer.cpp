// llama2.c tokenizer.bin (karpathy/llama2.c run.c): int32 max_token_length, then per token
// float32 score, int32 length, bytes. Encoding is run.c's: a dummy-prefix space, one token per
// UTF-8 code point (byte fallback to id byte + 3), then greedy merges of the adjacent pair whose
// concatenation has the highest score.
#include <cstring>
#include <unordered_map>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace {

class Llama2cTokenizer : public Tokenizer {
 public:
  Llama2cTokenizer(const std::string& path, int32_t vocab_size) {
    auto f = MappedFile::open(path);
    const uint8_t* p = f->data();
    const size_t n = f->size();
    size_t off = 0;
    auto read = [&](void* dst, size_t bytes, const char* what) {
      if (off > n || bytes > n - off) {
        throw IoError(fmt::format("{}: truncated llama2.c tokenizer ({} at offset {}, file has {} bytes)",
                                  path, what, off, n));
      }
      std::memcpy(dst, p + off, bytes);
      off += bytes;
    };
    int32_t max_len = 0;
    read(&max_len, 4, "header");
    JNAS_CHECK_IO(max_len > 0 && max_len < (1 << 16), "{}: bad max_token_length {}", path, max_len);
    // Without a vocab size from the model, read entries until the end of the file.
    const int32_t limit = vocab_size > 0 ? vocab_size : (1 << 22);
    for (int32_t i = 0; i < limit && off < n; ++i) {
      float score = 0;
      int32_t len = 0;
      read(&score, 4, "score");
      read(&len, 4, "length");
      JNAS_CHECK_IO(len >= 0 && len <= max_len, "{}: token {} has length {} (max {})", path, i, len,
                    max_len);
      std::string piece(static_cast<size_t>(len), '\0');
      read(piece.data(), static_cast<size_t>(len), "piece");
      scores_.push_back(score);
      index_.emplace(piece, i);  // first occurrence wins, as run.c's sorted lookup finds one
      pieces_.push_back(std::move(piece));
    }
    JNAS_CHECK_IO(vocab_size <= 0 || static_cast<int32_t>(pieces_.size()) == vocab_size,
                  "{}: {} tokens, the model expects {}", path, pieces_.size(), vocab_size);
    JNAS_CHECK_IO(pieces_.size() > 3, "{}: tokenizer has too few tokens", path);
  }

  std::vector<int32_t> encode(std::string_view text, bool /*parse_special*/) const override {
    std::vector<int32_t> ids;
    if (text.empty()) return ids;
    if (auto it = index_.find(" "); it != index_.end()) ids.push_back(it->second);
    for (size_t i = 0; i < text.size();) {
      // One UTF-8 code point: a lead byte and its continuation bytes (at most 4 bytes).
      size_t j = i + 1;
      while (j < text.size() && j - i < 4 && (static_cast<uint8_t>(text[j]) & 0xC0) == 0x80) ++j;
      std::string cp(text.substr(i, j - i));
      if (auto it = index_.find(cp); it != index_.end()) {
        ids.push_back(it->second);
      } else {
        for (char c : cp) ids.push_back(static_cast<uint8_t>(c) + 3);  // <0x00> is id 3
      }
      i = j;
    }
    while (true) {
      float best = -1e10f;
      int32_t best_id = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        auto it = index_.find(pieces_[ids[i]] + pieces_[ids[i + 1]]);
        if (it != index_.end() && scores_[it->second] > best) {
          best = scores_[it->second];
          best_id = it->second;
          best_i = i;
        }
      }
      if (best_id < 0) break;
      ids[best_i] = best_id;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string out;
    bool at_start = true;  // run.c strips the dummy-prefix space after BOS
    for (int32_t id : ids) {
      if (id < 0 || id >= static_cast<int32_t>(pieces_.size())) continue;
      if (skip_special && (id == bos_id() || id == eos_id())) {
        at_start = id == bos_id();
        continue;
      }
      std::string piece = pieces_[id];
      if (at_start && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
      at_start = false;
      unsigned byte = 0;
      if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) {
        out.push_back(static_cast<char>(byte));
      } else {
        out += piece;
      }
    }
    return out;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  std::string kind() const override { return "llama2c"; }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& tokenizer_bin, int32_t vocab_size) {
  return std::make_unique<Llama2cTokenizer>(tokenizer_bin, vocab_size);
}

}  // namespace jointnas::tok
