// tiktoken ranks files (Llama-3 `tokenizer.model`): one "base64(token bytes) rank" per line, the
// rank being both the token id and its merge priority (openai/tiktoken). Special tokens are not in
// the file; the Llama-3 ones are added in code as meta-llama/llama3 llama/tokenizer.py does.
#include <charconv>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/tokenizer/byte_level_bpe.h"

namespace jointnas::tok {
namespace {

constexpr int64_t kMaxRank = int64_t(1) << 22;  // refuse absurd ranks before allocating for them

// Strict RFC 4648 base64 (standard alphabet, '=' padding); nullopt on any other character.
std::optional<std::string> decode_base64(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.empty() || s.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && s[s.size() - 1 - pad] == '=') ++pad;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < s.size() - pad; ++i) {
    const int v = value(s[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// The 256 Llama-3 specials, in id order starting at the number of ranks (128000): the named ones,
// then reserved 5..250 (meta-llama/llama3 llama/tokenizer.py, num_reserved_special_tokens = 256).
std::vector<std::string> llama3_special_tokens() {
  std::vector<std::string> s = {"<|begin_of_text|>",
                                "<|end_of_text|>",
                                "<|reserved_special_token_0|>",
                                "<|reserved_special_token_1|>",
                                "<|reserved_special_token_2|>",
                                "<|reserved_special_token_3|>",
                                "<|start_header_id|>",
                                "<|end_header_id|>",
                                "<|reserved_special_token_4|>",
                                "<|eot_id|>"};
  for (int i = 5; i < 256 - 5; ++i) s.push_back(fmt::format("<|reserved_special_token_{}|>", i));
  return s;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path, const std::string& kind) {
  if (kind != "llama3" && kind != "none") {
    throw ConfigError(fmt::format("unknown tiktoken special-token set '{}' for {}", kind, path),
                      "use \"llama3\" (Llama-3 specials) or \"none\"");
  }
  const std::string text = read_text_file(path);
  std::vector<std::string> id_to_bytes;
  size_t num_ranks = 0;
  for_each_line(text, [&](std::string_view line, size_t line_no) {
    if (line.empty()) return;
    const size_t sp = line.find(' ');
    JNAS_CHECK_IO(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size(),
                  "{}:{}: expected 'base64 rank', got '{}'", path, line_no, line.substr(0, 80));
    auto bytes = decode_base64(line.substr(0, sp));
    JNAS_CHECK_IO(bytes && !bytes->empty(), "{}:{}: invalid base64 token '{}'", path, line_no,
                  line.substr(0, sp));
    int64_t rank = -1;
    const std::string_view r = line.substr(sp + 1);
    auto [ptr, ec] = std::from_chars(r.data(), r.data() + r.size(), rank);
    JNAS_CHECK_IO(ec == std::errc() && ptr == r.data() + r.size() && rank >= 0 && rank < kMaxRank,
                  "{}:{}: rank must be an integer in [0, {}), got '{}'", path, line_no, kMaxRank,
                  r);
    if (static_cast<size_t>(rank) >= id_to_bytes.size())
      id_to_bytes.resize(static_cast<size_t>(rank) + 1);
    JNAS_CHECK_IO(id_to_bytes[static_cast<size_t>(rank)].empty(), "{}:{}: rank {} appears twice",
                  path, line_no, rank);
    id_to_bytes[static_cast<size_t>(rank)] = std::move(*bytes);
    ++num_ranks;
  });
  JNAS_CHECK_IO(num_ranks > 0, "{}: no ranks (empty tiktoken file)", path);

  auto bpe = std::make_unique<ByteLevelBpe>("tiktoken", path);
  bpe->set_vocab(std::move(id_to_bytes));
  bpe->add_merges_from_ranks();
  bpe->add_splitter(
      std::make_unique<RegexSplitter>(kLlama3Pattern, SplitBehavior::kIsolated, false, path));
  bpe->set_ignore_merges(true);  // tiktoken looks the whole piece up before merging
  int32_t bos = -1, eos = -1;
  if (kind == "llama3") {
    // Specials follow the base tokens: id = number of ranks + index (tokenizer.py).
    const auto specials = llama3_special_tokens();
    for (size_t i = 0; i < specials.size(); ++i) {
      const auto id = static_cast<int32_t>(num_ranks + i);
      JNAS_CHECK_IO(
          static_cast<size_t>(id) >= bpe->num_base_tokens() || bpe->token_bytes(id).empty(),
          "{}: special token {} = {} collides with a rank (ranks are not 0..{})", path, specials[i],
          id, num_ranks - 1);
      bpe->add_token({id, specials[i], true});
    }
    bos = static_cast<int32_t>(num_ranks);      // <|begin_of_text|>
    eos = static_cast<int32_t>(num_ranks + 1);  // <|end_of_text|>
  }
  bpe->finalize(/*require_all_bytes=*/true);
  bpe->set_special_ids(bos, eos, bos >= 0);
  return bpe;
}

}  // namespace jointnas::tok
