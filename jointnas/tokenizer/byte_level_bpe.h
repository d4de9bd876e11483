// Byte-level BPE, the engine behind tokenizer.json (HF `tokenizers`), GPT-2's encoder.json +
// vocab.bpe and tiktoken ranks files. Internal to the tokenizer library: the loaders fill one in
// and hand it out as a Tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "jointnas/tokenizer/regex_splitter.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {

// Calls fn(line, line_no) for every line of `text` (1-based numbers, a trailing '\r' stripped):
// the shared reader of the line-oriented vocab files (GPT-2 vocab.bpe, tiktoken ranks).
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, line_no);
  }
}

// GPT-2's reversible byte <-> printable code point map (openai/gpt-2 encoder.py bytes_to_unicode):
// printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order. Vocabularies
// of byte-level tokenizers are written in these characters ("Ġthe" is " the").
char32_t byte_to_unicode(uint8_t byte);
// A vocabulary string back to raw bytes; nullopt when a character is outside the map.
std::optional<std::string> byte_level_to_bytes(std::string_view token);

// Heterogeneous lookup: find a std::string key from a string_view without allocating.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using BytesIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct AddedToken {
  int32_t id = -1;
  std::string content;  // matched literally in the input text (raw UTF-8, not byte-level)
  bool special = true;  // special: split out only with parse_special, skipped by decode
};

class ByteLevelBpe final : public Tokenizer {
 public:
  // `kind` is what kind() reports ("bpe", "tiktoken"); `source` names the file in errors.
  ByteLevelBpe(std::string kind, std::string source);

  // --- building (loaders only; call set_vocab first, finalize last) -----------------------------
  // id -> raw token bytes; an empty string marks an unused id.
  void set_vocab(std::vector<std::string> id_to_bytes);
  // Registers merge (left, right) with priority `rank` (lower merges first). Returns false when
  // left + right is not a vocabulary token. A repeated pair keeps its first (lowest) rank.
  bool add_merge(int32_t left, int32_t right, int32_t rank);
  // tiktoken: every split of every token into two tokens is a merge ranked by the whole token's
  // rank (= id), which makes merge order "lowest rank of the concatenation first".
  void add_merges_from_ranks();
  void add_token(AddedToken token);
  void add_splitter(std::unique_ptr<RegexSplitter> splitter);
  // tiktoken (and HF's `ignore_merges`): a pre-token that is itself a token is taken whole.
  void set_ignore_merges(bool on) { ignore_merges_ = on; }
  void set_add_prefix_space(bool on) { add_prefix_space_ = on; }
  void set_special_ids(int32_t bos, int32_t eos, bool add_bos);
  // Checks the byte alphabet (all 256 bytes when `require_all_bytes`) and builds lookup tables.
  void finalize(bool require_all_bytes);

  int32_t find_bytes(std::string_view bytes) const;
  const std::string& token_bytes(int32_t id) const { return id_to_bytes_[static_cast<size_t>(id)]; }
  size_t num_base_tokens() const { return id_to_bytes_.size(); }

  // --- Tokenizer --------------------------------------------------------------------------------
  std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  bool add_bos() const override { return add_bos_; }
  std::string kind() const override { return kind_; }
  int32_t token_to_id(std::string_view token) const override;

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Text without added tokens: pre-tokenize, then BPE each piece.
  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;
  // Leftmost-longest added token starting at text[pos], or nullptr.
  const AddedToken* match_added(std::string_view text, size_t pos, bool parse_special) const;

  std::string kind_, source_;
  std::vector<std::string> id_to_bytes_;
  BytesIndex bytes_to_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<AddedToken> added_;
  std::vector<int32_t> added_by_id_;                  // id -> index into added_, or -1
  std::vector<std::vector<int32_t>> added_by_first_;  // first byte -> added_ indices, longest first
  std::vector<std::unique_ptr<RegexSplitter>> splitters_;
  int32_t byte_ids_[256];
  bool ignore_merges_ = false, add_prefix_space_ = false;
  int32_t vocab_size_ = 0, bos_ = -1, eos_ = -1;
  bool add_bos_ = false;

  // Pre-token -> ids. Natural text repeats words, so most pre-tokens hit this cache; bounded so a
  // long run over random text cannot grow it without limit.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace jointnas::tok
