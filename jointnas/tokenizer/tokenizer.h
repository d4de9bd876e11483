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
