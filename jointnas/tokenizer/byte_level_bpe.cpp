// Byte-level BPE encode / decode; see byte_level_bpe.h.
#include "jointnas/tokenizer/byte_level_bpe.h"

#include <algorithm>

#include "jointnas/core/error.h"

namespace jointnas::tok {
namespace {

// Bytes GPT-2 keeps as themselves: '!'..'~', '¡'..'¬', '®'..'ÿ'.
bool byte_is_printable(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

struct ByteMaps {
  char32_t to_unicode[256];
  std::unordered_map<char32_t, uint8_t> to_byte;
  ByteMaps() {
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      to_unicode[b] =
          byte_is_printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      to_byte[to_unicode[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteMaps& byte_maps() {
  static const ByteMaps maps;
  return maps;
}

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = size_t(1) << 17;

}  // namespace

char32_t byte_to_unicode(uint8_t byte) { return byte_maps().to_unicode[byte]; }

std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  const auto& to_byte = byte_maps().to_byte;
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    // Decode one UTF-8 code point; every character of the map is at most 2 bytes (< U+0200).
    const auto c = static_cast<uint8_t>(token[i]);
    char32_t cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c >> 5) == 0x6 && i + 1 < token.size()) {
      cp = (static_cast<char32_t>(c & 0x1F) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3F);
      i += 2;
    } else {
      return std::nullopt;
    }
    auto it = to_byte.find(cp);
    if (it == to_byte.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

ByteLevelBpe::ByteLevelBpe(std::string kind, std::string source)
    : kind_(std::move(kind)), source_(std::move(source)) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
}

void ByteLevelBpe::set_vocab(std::vector<std::string> id_to_bytes) {
  id_to_bytes_ = std::move(id_to_bytes);
  bytes_to_id_.clear();
  bytes_to_id_.reserve(id_to_bytes_.size());
  for (size_t id = 0; id < id_to_bytes_.size(); ++id) {
    if (id_to_bytes_[id].empty()) continue;
    auto [it, inserted] = bytes_to_id_.emplace(id_to_bytes_[id], static_cast<int32_t>(id));
    JNAS_CHECK_IO(inserted, "{}: tokens {} and {} have the same bytes", source_, it->second, id);
  }
}

int32_t ByteLevelBpe::find_bytes(std::string_view bytes) const {
  auto it = bytes_to_id_.find(bytes);
  return it == bytes_to_id_.end() ? -1 : it->second;
}

bool ByteLevelBpe::add_merge(int32_t left, int32_t right, int32_t rank) {
  const int32_t merged = find_bytes(token_bytes(left) + token_bytes(right));
  if (merged < 0) return false;
  merges_.emplace(pair_key(left, right), Merge{rank, merged});
  return true;
}

void ByteLevelBpe::add_merges_from_ranks() {
  merges_.reserve(id_to_bytes_.size() * 3);
  for (size_t id = 0; id < id_to_bytes_.size(); ++id) {
    const std::string_view t = id_to_bytes_[id];
    for (size_t k = 1; k < t.size(); ++k) {
      const int32_t l = find_bytes(t.substr(0, k));
      if (l < 0) continue;
      const int32_t r = find_bytes(t.substr(k));
      if (r < 0) continue;
      merges_.emplace(pair_key(l, r), Merge{static_cast<int32_t>(id), static_cast<int32_t>(id)});
    }
  }
}

void ByteLevelBpe::add_token(AddedToken token) {
  JNAS_CHECK_IO(!token.content.empty(), "{}: added token {} has empty content", source_, token.id);
  JNAS_CHECK_IO(token.id >= 0 && token.id < (1 << 24),
                "{}: added token '{}' has id {} (expected 0 "
                "<= id < 2^24)",
                source_, token.content, token.id);
  for (const auto& a : added_) {
    if (a.content == token.content) return;  // HF lists some tokens twice; the first one wins
  }
  added_.push_back(std::move(token));
}

void ByteLevelBpe::add_splitter(std::unique_ptr<RegexSplitter> splitter) {
  splitters_.push_back(std::move(splitter));
}

void ByteLevelBpe::set_special_ids(int32_t bos, int32_t eos, bool add_bos) {
  // Ids outside the vocabulary (known once finalize() ran) mean "none".
  auto valid = [&](int32_t id) { return id >= 0 && (vocab_size_ == 0 || id < vocab_size_); };
  bos_ = valid(bos) ? bos : -1;
  eos_ = valid(eos) ? eos : -1;
  add_bos_ = add_bos && bos_ >= 0;
}

void ByteLevelBpe::finalize(bool require_all_bytes) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_ids_[b] = find_bytes(std::string_view(&c, 1));
    JNAS_CHECK_IO(!require_all_bytes || byte_ids_[b] >= 0,
                  "{}: byte 0x{:02X} has no token; a byte-level vocabulary needs all 256 bytes",
                  source_, b);
  }
  vocab_size_ = static_cast<int32_t>(id_to_bytes_.size());
  for (const auto& a : added_) vocab_size_ = std::max(vocab_size_, a.id + 1);
  added_by_id_.assign(static_cast<size_t>(vocab_size_), -1);
  added_by_first_.assign(256, {});
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_id_[static_cast<size_t>(added_[i].id)] = static_cast<int32_t>(i);
    added_by_first_[static_cast<uint8_t>(added_[i].content[0])].push_back(static_cast<int32_t>(i));
  }
  // Longest first, so the first hit at a position is the leftmost-longest match (as HF's
  // Aho-Corasick with LeftmostLongest and tiktoken's alternation of specials sorted by length).
  for (auto& bucket : added_by_first_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
      return added_[a].content.size() > added_[b].content.size();
    });
  }
  if (bos_ >= vocab_size_) bos_ = -1;
  if (eos_ >= vocab_size_) eos_ = -1;
}

int32_t ByteLevelBpe::token_to_id(std::string_view token) const {
  for (const auto& a : added_) {
    if (a.content == token) return a.id;
  }
  return find_bytes(token);
}

const AddedToken* ByteLevelBpe::match_added(std::string_view text, size_t pos,
                                            bool parse_special) const {
  for (int32_t i : added_by_first_[static_cast<uint8_t>(text[pos])]) {
    const AddedToken& a = added_[static_cast<size_t>(i)];
    if (a.special && !parse_special) continue;
    if (text.compare(pos, a.content.size(), a.content) == 0) return &a;
  }
  return nullptr;
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  size_t start = 0;
  if (!added_.empty()) {
    for (size_t pos = 0; pos < text.size();) {
      const AddedToken* a = match_added(text, pos, parse_special);
      if (a == nullptr) {
        ++pos;
        continue;
      }
      encode_ordinary(text.substr(start, pos - start), ids);
      ids.push_back(a->id);
      pos += a->content.size();
      start = pos;
    }
  }
  encode_ordinary(text.substr(start), ids);
  return ids;
}

void ByteLevelBpe::encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::string prefixed;
  if (add_prefix_space_ && text[0] != ' ') {
    // Built with reserve + append: GCC 12 warns (-Wrestrict, a false positive) on " " + string.
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  std::vector<std::string_view> pieces{text}, next;
  for (const auto& splitter : splitters_) {
    next.clear();
    for (std::string_view p : pieces) splitter->split(p, next);
    pieces.swap(next);
  }
  for (std::string_view p : pieces) encode_word(p, ids);
}

void ByteLevelBpe::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (word.size() == 1) {
    if (byte_ids_[static_cast<uint8_t>(word[0])] >= 0)
      ids.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    if (int32_t id = find_bytes(word); id >= 0) {
      ids.push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_word(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(
        std::string(word),
        std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end()));
  }
}

// BPE over one pre-token: start from one symbol per byte, then repeatedly merge the adjacent pair
// with the lowest rank, leftmost on ties. This is both HF tokenizers' `Word::merge_all` and
// tiktoken's `_byte_pair_merge` (which picks the first minimum). A min-heap of candidate pairs
// with lazy invalidation makes it O(n log n) instead of O(n^2) for long words.
void ByteLevelBpe::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  struct Symbol {
    int32_t id, prev, next;  // prev / next: indices into `syms`, -1 at the ends
  };
  struct Candidate {
    int32_t rank, pos, left, right, merged;
    // std heap is a max-heap: "greater" puts the lowest (rank, pos) on top.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;  // as HF without unk_token: a byte outside the vocabulary is dropped
    const auto n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, -1});
    if (n > 0) syms[static_cast<size_t>(n - 1)].next = n;
  }
  std::vector<Candidate> heap;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0) return;
    const Symbol& s = syms[static_cast<size_t>(pos)];
    if (s.next < 0) return;
    const int32_t right = syms[static_cast<size_t>(s.next)].id;
    auto it = merges_.find(pair_key(s.id, right));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, s.id, right, it->second.merged});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& s = syms[static_cast<size_t>(c.pos)];
    // Stale entry: one side was merged away or changed since this pair was pushed.
    if (s.id != c.left || s.next < 0 || syms[static_cast<size_t>(s.next)].id != c.right) continue;
    Symbol& r = syms[static_cast<size_t>(s.next)];
    s.id = c.merged;
    s.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.pos;
    r.id = -1;  // dead
    push_pair(s.prev);
    push_pair(c.pos);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    ids.push_back(syms[static_cast<size_t>(i)].id);
  }
}

std::string ByteLevelBpe::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    // Ids outside the vocabulary (a model's padded embedding rows) decode to nothing, as in HF.
    if (id < 0 || id >= vocab_size_) continue;
    if (const int32_t a = added_by_id_[static_cast<size_t>(id)]; a >= 0) {
      const AddedToken& t = added_[static_cast<size_t>(a)];
      if (!(skip_special && t.special)) out += t.content;
      continue;
    }
    if (static_cast<size_t>(id) < id_to_bytes_.size()) out += id_to_bytes_[static_cast<size_t>(id)];
  }
  return out;
}

}  // namespace jointnas::tok
