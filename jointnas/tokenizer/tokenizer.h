// Tokenizer interface: SentencePiece models, byte-level BPE (tokenizer.json, GPT-2 files),
// Llama-3 tiktoken ranks and llama2.c tokenizer.bin all encode and decode through this class.
// Torch-free on purpose (fast to build, fuzzable).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jointnas::tok {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids, WITHOUT BOS/EOS (callers add them per the model's convention, see bos_id()).
  // Special tokens written literally in `text` (e.g. "<|begin_of_text|>") are encoded as their
  // ids only when `parse_special` is true, as HF tokenizers / tiktoken's allowed_special do.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const = 0;
  // The ids of `text` when it continues a longer text at a safe cut (ChunkedEncoder: a space
  // between two printable ASCII characters): encode(whole) == encode(first piece) followed by
  // encode_continuation(each later piece). Tokenizers that add something at the start of a text
  // (a dummy-prefix space) leave it out here.
  virtual std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special = false) const {
    return encode(text, parse_special);
  }
  // ids -> text. Special tokens (BOS, EOS, ...) are skipped when `skip_special` is true.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;

  virtual int32_t vocab_size() const = 0;
  // -1 when the tokenizer has none.
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // Whether the model's convention prepends BOS to a prompt (tokenizer_config add_bos_token).
  virtual bool add_bos() const { return bos_id() >= 0; }
  // A short name for logs and JSON: "sentencepiece", "bpe", "tiktoken", "llama2c".
  virtual std::string kind() const = 0;
  // The id of one token given as its text ("<|eot_id|>", "</s>", "<s>"), -1 when there is none.
  // Used to resolve tokenizer_config.json's bos_token / eos_token strings.
  virtual int32_t token_to_id(std::string_view token) const { return -1; }
};

// Tokenizes a document of any length in bounded memory: the text arrives in pieces (feed), and
// is encoded a chunk of at most `chunk_bytes` at a time, cut before a space that sits between two
// printable ASCII characters. No supported tokenizer decides anything across such a cut (byte-
// level BPE pre-tokenizers start a piece at the space, SentencePiece and llama2.c pieces never
// hold an inner space), so the ids are exactly those of encode(whole document); this is tested on
// wikitext-2 for every tokenizer kind. A chunk without such a space (a line of 64 KiB without a
// space) is cut at a character boundary instead: counted by forced_cuts() and logged once, as the
// ids next to it may differ from the whole-text ones (a 1 GB line used to take 15-25 GB instead).
class ChunkedEncoder {
 public:
  static constexpr size_t kDefaultChunkBytes = size_t(64) << 10;
  explicit ChunkedEncoder(const Tokenizer& tok, size_t chunk_bytes = kDefaultChunkBytes,
                          bool parse_special = false);
  // Appends the next bytes of the current document; appends to `out` the ids of every chunk
  // that is complete.
  void feed(std::string_view bytes, std::vector<int32_t>& out);
  // Ends the document: appends the ids of the rest. The encoder then starts a new document.
  void finish(std::vector<int32_t>& out);
  int64_t forced_cuts() const { return forced_cuts_; }

 private:
  void encode_chunk(std::string_view chunk, std::vector<int32_t>& out);
  const Tokenizer& tok_;
  size_t chunk_bytes_;
  bool parse_special_;
  std::string pending_;
  bool started_ = false;  // a chunk of this document was encoded already
  int64_t forced_cuts_ = 0;
};

// Loads whichever tokenizer a model directory holds, in this order: tokenizer.json (byte-level
// BPE), tokenizer.model (SentencePiece protobuf, or a tiktoken ranks text file, told apart by
// content), tokenizer.bin (llama2.c format), encoder.json + vocab.bpe (GPT-2). BOS/EOS and
// add_bos come from tokenizer_config.json / config.json when present. Throws IoError naming the
// file when none is found or a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

// Direct loaders (each throws IoError naming the file on malformed input).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path);
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& tokenizer_json_path);
// `kind` selects the special tokens added in code: "llama3" adds <|begin_of_text|> = 128000 ...
// as meta-llama/llama3 tokenizer.py does.
std::unique_ptr<Tokenizer> load_tiktoken(const std::string& ranks_path,
                                         const std::string& kind = "llama3");
std::unique_ptr<Tokenizer> load_gpt2(const std::string& encoder_json, const std::string& vocab_bpe);
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& tokenizer_bin,
                                                  int32_t vocab_size = -1);

}  // namespace jointnas::tok
