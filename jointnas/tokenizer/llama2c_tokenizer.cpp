// llama2.c tokenizer.bin (karpathy/llama2.c run.c): int32 max_token_length, then per token
// float32 score, int32 length, bytes. Encoding is run.c's: a dummy-prefix space, one token per
// UTF-8 code point (byte fallback to id byte + 3), then greedy merges of the adjacent pair whose
// concatenation has the highest score.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/tokenizer/byte_level_bpe.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace {

// run.c stores pieces as C strings; anything longer than this is a corrupt file, not a token.
constexpr int32_t kMaxPieceBytes = 1 << 16;
// Without a vocab size we read until the end of the file, but never more tokens than this.
constexpr int32_t kMaxTokens = 1 << 22;

class Llama2cTokenizer : public Tokenizer {
 public:
  Llama2cTokenizer(const std::string& path, int32_t vocab_size) {
    auto f = MappedFile::open(path);
    const uint8_t* p = f->data();
    const size_t n = f->size();
    size_t off = 0;
    auto read = [&](void* dst, size_t bytes, const char* what) {
      if (off > n || bytes > n - off) {
        throw IoError(
            fmt::format("{}: truncated llama2.c tokenizer ({} of token {} at offset {}, "
                        "file has {} bytes)",
                        path, what, pieces_.size(), off, n));
      }
      std::memcpy(dst, p + off, bytes);
      off += bytes;
    };
    JNAS_CHECK_IO(vocab_size < kMaxTokens, "{}: vocab size {} is too large", path, vocab_size);
    int32_t max_len = 0;
    read(&max_len, 4, "header");
    JNAS_CHECK_IO(max_len > 0 && max_len < kMaxPieceBytes, "{}: bad max_token_length {}", path,
                  max_len);
    const int32_t limit = vocab_size > 0 ? vocab_size : kMaxTokens;
    for (int32_t i = 0; i < limit && off < n; ++i) {
      float score = 0;
      int32_t len = 0;
      read(&score, 4, "score");
      // A NaN breaks the merge heap's ordering (and so the tokenization) without a word; run.c's
      // scores are finite log-probabilities.
      JNAS_CHECK_IO(std::isfinite(score), "{}: token {} has score {}: scores must be finite numbers", path, i,
                    score);
      read(&len, 4, "length");
      JNAS_CHECK_IO(len >= 0 && len <= max_len, "{}: token {} has length {} (max_token_length {})",
                    path, i, len, max_len);
      std::string piece(static_cast<size_t>(len), '\0');
      read(piece.data(), static_cast<size_t>(len), "piece");
      scores_.push_back(score);
      index_.emplace(piece, i);  // first occurrence wins, as run.c's sorted lookup finds one
      pieces_.push_back(std::move(piece));
    }
    JNAS_CHECK_IO(vocab_size <= 0 || static_cast<int32_t>(pieces_.size()) == vocab_size,
                  "{}: {} tokens, the model expects {}", path, pieces_.size(), vocab_size);
    // Byte fallback ids are byte + 3, so a usable vocabulary has at least <unk> <s> </s> + 256.
    JNAS_CHECK_IO(pieces_.size() >= 259,
                  "{}: {} tokens; a llama2.c vocabulary has at least 259 "
                  "(<unk>, <s>, </s> and 256 byte tokens)",
                  path, pieces_.size());
    if (auto it = index_.find(" "); it != index_.end()) space_id_ = it->second;
  }

  std::vector<int32_t> encode(std::string_view text, bool /*parse_special*/) const override {
    return encode_text(text, /*dummy_prefix=*/true);
  }
  // A continuation of a longer text gets no second dummy-prefix space.
  std::vector<int32_t> encode_continuation(std::string_view text, bool /*parse_special*/) const override {
    return encode_text(text, /*dummy_prefix=*/false);
  }

  std::vector<int32_t> encode_text(std::string_view text, bool dummy_prefix) const {
    std::vector<int32_t> ids;
    if (text.empty()) return ids;
    if (dummy_prefix && space_id_ >= 0) ids.push_back(space_id_);  // run.c's dummy prefix
    for (size_t i = 0; i < text.size();) {
      // One UTF-8 code point: a lead byte and its continuation bytes (at most 4 bytes).
      size_t j = i + 1;
      while (j < text.size() && j - i < 4 && (static_cast<uint8_t>(text[j]) & 0xC0) == 0x80) ++j;
      if (auto it = index_.find(text.substr(i, j - i)); it != index_.end()) {
        ids.push_back(it->second);
      } else {
        for (size_t k = i; k < j; ++k)
          ids.push_back(static_cast<uint8_t>(text[k]) + 3);  // <0x00> = 3
      }
      i = j;
    }
    merge(ids);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string out;
    // run.c strips a piece's leading space right after BOS; we also do it at the very start, so
    // decode(encode(text)) == text (encode adds the dummy-prefix space but no BOS).
    bool at_start = true;
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size()) continue;
      if (skip_special && (id == bos_id() || id == eos_id())) {
        at_start = id == bos_id();
        continue;
      }
      std::string_view piece = pieces_[static_cast<size_t>(id)];
      if (at_start && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      at_start = false;
      if (auto byte = byte_piece(piece)) {
        out.push_back(static_cast<char>(*byte));
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
  int32_t token_to_id(std::string_view token) const override {
    if (token == "<s>") return bos_id();  // stored as "\n<s>\n" by llama2.c's export
    if (token == "</s>") return eos_id();
    auto it = index_.find(token);
    return it == index_.end() ? -1 : it->second;
  }

 private:
  // "<0xAB>" -> 0xAB (run.c's sscanf "<0x%02hhX>").
  static std::optional<uint8_t> byte_piece(std::string_view p) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    if (p.size() != 6 || !p.starts_with("<0x") || p[5] != '>') return std::nullopt;
    const int hi = hex(p[3]), lo = hex(p[4]);
    if (hi < 0 || lo < 0) return std::nullopt;
    return static_cast<uint8_t>(hi * 16 + lo);
  }

  int32_t lookup_pair(int32_t a, int32_t b) const {
    std::string s = pieces_[static_cast<size_t>(a)];
    s += pieces_[static_cast<size_t>(b)];
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
  }

  // run.c merges the highest-scoring adjacent pair (leftmost on ties, its loop uses '>') until no
  // pair is in the vocabulary. Same order here with a heap, O(n log n) instead of O(n^2).
  void merge(std::vector<int32_t>& ids) const {
    struct Candidate {
      float score;
      int32_t pos, left, right, merged;
      bool operator<(const Candidate& o) const {  // top of the max-heap: best score, then leftmost
        return score != o.score ? score < o.score : pos > o.pos;
      }
    };
    const auto n = static_cast<int32_t>(ids.size());
    std::vector<int32_t> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
      prev[static_cast<size_t>(i)] = i - 1;
    }
    std::vector<Candidate> heap;
    auto push = [&](int32_t i) {
      if (i < 0 || next[static_cast<size_t>(i)] < 0) return;
      const int32_t a = ids[static_cast<size_t>(i)],
                    b = ids[static_cast<size_t>(next[static_cast<size_t>(i)])];
      const int32_t m = lookup_pair(a, b);
      // run.c starts its search at -1e10: a pair scoring lower is never merged.
      if (m < 0 || !(scores_[static_cast<size_t>(m)] > -1e10f)) return;
      heap.push_back({scores_[static_cast<size_t>(m)], i, a, b, m});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Candidate c = heap.back();
      heap.pop_back();
      const auto i = static_cast<size_t>(c.pos);
      if (ids[i] != c.left || next[i] < 0 || ids[static_cast<size_t>(next[i])] != c.right) continue;
      const auto r = static_cast<size_t>(next[i]);
      ids[i] = c.merged;
      ids[r] = -1;  // dead
      next[i] = next[r];
      if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = c.pos;
      push(prev[i]);
      push(c.pos);
    }
    ids.erase(std::remove(ids.begin(), ids.end(), -1), ids.end());
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
  int32_t space_id_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& tokenizer_bin,
                                                  int32_t vocab_size) {
  return std::make_unique<Llama2cTokenizer>(tokenizer_bin, vocab_size);
}

}  // namespace jointnas::tok
