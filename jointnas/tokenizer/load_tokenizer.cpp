// Finds and loads the tokenizer of a model directory, then applies the model's own BOS / EOS /
// add_bos conventions from tokenizer_config.json and config.json.
#include <filesystem>
#include <fstream>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace fs = std::filesystem;
namespace {

// A loaded tokenizer with BOS / EOS / add_bos replaced by the model directory's configuration.
class ConfiguredTokenizer : public Tokenizer {
 public:
  ConfiguredTokenizer(std::unique_ptr<Tokenizer> inner, int32_t bos, int32_t eos, bool add_bos)
      : inner_(std::move(inner)), bos_(bos), eos_(eos), add_bos_(add_bos && bos >= 0) {}
  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    return inner_->encode(text, parse_special);
  }
  std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special) const override {
    return inner_->encode_continuation(text, parse_special);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    return inner_->decode(ids, skip_special);
  }
  int32_t vocab_size() const override { return inner_->vocab_size(); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  bool add_bos() const override { return add_bos_; }
  std::string kind() const override { return inner_->kind(); }
  int32_t token_to_id(std::string_view token) const override { return inner_->token_to_id(token); }

 private:
  std::unique_ptr<Tokenizer> inner_;
  int32_t bos_, eos_;
  bool add_bos_;
};

// A tiktoken ranks file starts with "base64 rank"; a SentencePiece model is a binary protobuf.
bool looks_like_tiktoken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!std::getline(in, line)) return false;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const size_t sp = line.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size()) return false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    const bool ok =
        i < sp ? (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')
               : i == sp || std::isdigit(static_cast<unsigned char>(c));
    if (!ok) return false;
  }
  return true;
}

// tokenizer_config.json writes tokens as "</s>" or {"content": "</s>", ...}.
std::optional<std::string> token_string(const Json& cfg, const char* key,
                                        const std::string& source) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const Json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) return get_string(v, "content", source + "." + key);
  throw IoError(fmt::format("{}: '{}' must be a string or {{\"content\": ...}}, got {}", source,
                            key, v.dump()));
}

// config.json's bos_token_id / eos_token_id: an int, or a list whose first entry is used.
std::optional<int32_t> config_token_id(const Json& cfg, const char* key,
                                       const std::string& source) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const Json& v = cfg[key];
  const Json& first = v.is_array() && !v.empty() ? v[0] : v;
  JNAS_CHECK_IO(first.is_number_integer(),
                "{}: '{}' must be an integer or a list of integers, got "
                "{}",
                source, key, v.dump());
  return static_cast<int32_t>(first.get<int64_t>());
}

std::unique_ptr<Tokenizer> load_raw(const std::string& dir, int32_t config_vocab) {
  auto in = [&](const char* name) { return (fs::path(dir) / name).string(); };
  if (file_exists(in("tokenizer.json"))) {
    try {
      return load_hf_tokenizer_json(in("tokenizer.json"));
    } catch (const IoError& e) {
      // SentencePiece-style tokenizer.json files (Llama-2 on the hub) ship the tokenizer.model
      // they were converted from; that one is exact, so fall back to it.
      if (!file_exists(in("tokenizer.model"))) throw;
      JNAS_LOG_INFO("tokenizer.json not usable ({}); loading tokenizer.model instead", e.what());
    }
  }
  if (file_exists(in("tokenizer.model"))) {
    return looks_like_tiktoken(in("tokenizer.model"))
               ? load_tiktoken(in("tokenizer.model"), "llama3")
               : load_sentencepiece(in("tokenizer.model"));
  }
  if (file_exists(in("tokenizer.bin")))
    return load_llama2c_tokenizer(in("tokenizer.bin"), config_vocab);
  if (file_exists(in("encoder.json")) && file_exists(in("vocab.bpe"))) {
    return load_gpt2(in("encoder.json"), in("vocab.bpe"));
  }
  throw IoError(fmt::format("no tokenizer in '{}'", dir),
                "expected tokenizer.json, tokenizer.model, tokenizer.bin, or encoder.json + "
                "vocab.bpe");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  auto in = [&](const char* name) { return (fs::path(dir) / name).string(); };
  JNAS_CHECK_IO(dir_exists(dir), "tokenizer directory '{}' does not exist", dir);
  Json config, tok_config;
  if (file_exists(in("config.json"))) config = read_json_file(in("config.json"));
  if (file_exists(in("tokenizer_config.json")))
    tok_config = read_json_file(in("tokenizer_config.json"));
  const int32_t config_vocab = static_cast<int32_t>(
      config.is_object() ? get_int(config, "vocab_size", in("config.json")).value_or(-1) : -1);

  auto tok = load_raw(dir, config_vocab);
  int32_t bos = tok->bos_id(), eos = tok->eos_id();
  bool add_bos = tok->add_bos();
  bool bos_set = false, eos_set = false;
  // tokenizer_config.json defines the tokenizer's own BOS / EOS (what HF's tokenizer reports);
  // config.json's ids fill in what it leaves open (llama2.c and bare directories).
  if (tok_config.is_object()) {
    const std::string src = in("tokenizer_config.json");
    if (auto s = token_string(tok_config, "bos_token", src)) {
      const int32_t id = tok->token_to_id(*s);
      JNAS_CHECK_IO(id >= 0, "{}: bos_token '{}' is not in the vocabulary", src, *s);
      bos = id;
      bos_set = true;
    }
    if (auto s = token_string(tok_config, "eos_token", src)) {
      const int32_t id = tok->token_to_id(*s);
      JNAS_CHECK_IO(id >= 0, "{}: eos_token '{}' is not in the vocabulary", src, *s);
      eos = id;
      eos_set = true;
    }
    if (auto b = get_bool(tok_config, "add_bos_token", src)) add_bos = *b;
  }
  if (config.is_object()) {
    const std::string src = in("config.json");
    if (auto id = config_token_id(config, "bos_token_id", src); id && !bos_set) bos = *id;
    if (auto id = config_token_id(config, "eos_token_id", src); id && !eos_set) eos = *id;
  }
  const int32_t n = tok->vocab_size();
  JNAS_CHECK_IO(bos < n && eos < n, "{}: BOS {} / EOS {} outside the tokenizer's {} tokens", dir,
                bos, eos, n);
  if (bos == tok->bos_id() && eos == tok->eos_id() && add_bos == tok->add_bos()) return tok;
  return std::make_unique<ConfiguredTokenizer>(std::move(tok), bos, eos, add_bos);
}

}  // namespace jointnas::tok
