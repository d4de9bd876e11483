// The tokenizer in GGUF form (see gguf.h): SentencePiece models through libsentencepiece (pieces,
// scores and types as convert_hf_to_gguf.py's _create_vocab_sentencepiece writes them), llama2.c
// tokenizer.bin as convert_llama_ggml_to_gguf.py maps run.c's pieces back to SentencePiece's,
// and byte-level BPE tokenizer.json (vocab, merges, added tokens) as gpt2 / llama-bpe.
#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/export/gguf.h"

namespace jointnas::exporting {
namespace {
namespace fs = std::filesystem;

// llama.cpp's llama_token_type.
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;
// Bounds on what a tokenizer file may ask us to allocate (untrusted input).
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int32_t kMaxPieceBytes = 1 << 16;

// "▁" (U+2581): SentencePiece's word boundary, which run.c's export turned into a space.
const std::string kSpm = "\xE2\x96\x81";

GgufVocab read_llama2c(const std::string& path, int64_t vocab_size) {
  auto f = MappedFile::open(path);
  const uint8_t* p = f->data();
  const size_t n = f->size();
  size_t off = 0;
  auto read = [&](void* dst, size_t bytes) {
    JNAS_CHECK_IO(off <= n && bytes <= n - off, "{}: truncated llama2.c tokenizer at offset {}",
                  path, off);
    std::memcpy(dst, p + off, bytes);
    off += bytes;
  };
  JNAS_CHECK_IO(vocab_size > 3 && vocab_size < kMaxVocab, "{}: vocab size {} out of range", path,
                vocab_size);
  int32_t max_len = 0;
  read(&max_len, 4);
  JNAS_CHECK_IO(max_len > 0 && max_len < kMaxPieceBytes, "{}: bad max_token_length {}", path,
                max_len);
  GgufVocab v;
  v.model = "llama";
  v.source = path;
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  for (int64_t i = 0; i < vocab_size; ++i) {
    float score = 0;
    int32_t len = 0;
    read(&score, 4);
    read(&len, 4);
    JNAS_CHECK_IO(std::isfinite(score) && len >= 0 && len <= max_len,
                  "{}: token {} has score {} and length {}", path, i, score, len);
    std::string piece(static_cast<size_t>(len), '\0');
    read(piece.data(), static_cast<size_t>(len));
    int32_t type = kNormal;
    if (i == 0) {
      piece = "<unk>";
      type = kUnknown;
    } else if (i == 1 || i == 2) {
      piece = i == 1 ? "<s>" : "</s>";
      type = kControl;
    } else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>') {
      type = kByte;
    } else {
      std::string s;
      for (char ch : piece) s += ch == ' ' ? kSpm : std::string(1, ch);
      piece = s;
    }
    v.tokens.push_back(piece);
    v.scores.push_back(score);
    v.token_types.push_back(type);
  }
  return v;
}

GgufVocab read_sentencepiece(const std::string& path) {
  sentencepiece::SentencePieceProcessor sp;
  const auto st = sp.Load(path);
  JNAS_CHECK_IO(st.ok(), "{}: not a SentencePiece model ({})", path, st.ToString());
  GgufVocab v;
  v.model = "llama";
  v.source = path;
  const int n = sp.GetPieceSize();
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    int32_t type = kNormal;
    if (sp.IsUnknown(i))
      type = kUnknown;
    else if (sp.IsControl(i))
      type = kControl;
    else if (sp.IsUnused(i))
      type = kUnused;
    else if (sp.IsByte(i))
      type = kByte;
    v.token_types.push_back(type);
  }
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.unk_id = sp.unk_id();
  return v;
}

// tokenizer.json of a byte-level BPE model: model.vocab (token -> id), model.merges (strings "a b"
// or pairs), added_tokens (special -> control). Pre-tokenizer: llama-bpe for Llama-3's pattern,
// else gpt-2.
GgufVocab read_bpe_json(const std::string& path, int64_t vocab_size) {
  auto f = MappedFile::open(path);
  const Json j = Json::parse(std::string_view(reinterpret_cast<const char*>(f->data()), f->size()),
                             nullptr, false);
  JNAS_CHECK_IO(!j.is_discarded() && j.is_object(), "{}: not JSON", path);
  const Json& model = j.value("model", Json::object());
  JNAS_CHECK_IO(
      model.value("type", "") == "BPE" && model.contains("vocab") && model["vocab"].is_object(),
      "{}: a GGUF export embeds byte-level BPE tokenizer.json files only (model.type BPE)", path);
  const Json& vocab = model["vocab"];
  int64_t n = vocab_size;
  JNAS_CHECK_IO(n > 0 && n < kMaxVocab, "{}: vocab size {} out of range", path, n);
  GgufVocab v;
  v.model = "gpt2";
  v.pre =
      j.dump().find("(?i:'s|'t|'re|'ve|'m|'ll|'d)") != std::string::npos ? "llama-bpe" : "gpt-2";
  v.source = path;
  v.tokens.assign(static_cast<size_t>(n), "");
  v.token_types.assign(static_cast<size_t>(n), kUnused);
  for (const auto& [tok, id] : vocab.items()) {
    JNAS_CHECK_IO(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < n,
                  "{}: token '{}' has id {} outside [0, {})", path, tok, id.dump(), n);
    v.tokens[static_cast<size_t>(id.get<int64_t>())] = tok;
    v.token_types[static_cast<size_t>(id.get<int64_t>())] = kNormal;
  }
  for (const Json& a : j.value("added_tokens", Json::array())) {
    const int64_t id = a.value("id", int64_t{-1});
    if (id < 0 || id >= n) continue;
    v.tokens[static_cast<size_t>(id)] = a.value("content", "");
    v.token_types[static_cast<size_t>(id)] = a.value("special", false) ? kControl : kUserDefined;
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i].empty()) v.tokens[i] = fmt::format("[PAD{}]", i);
  }
  for (const Json& m : model.value("merges", Json::array())) {
    if (m.is_string())
      v.merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2)
      v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  v.add_bos = false;
  return v;
}

}  // namespace

GgufVocab read_vocab(const model::Checkpoint& ck, const std::string& model_path) {
  if (ck.format == "llama2c") {
    const fs::path dir = fs::path(model_path).parent_path();
    for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
      const std::string p = (dir / name).string();
      if (file_exists(p)) return read_llama2c(p, ck.config.vocab_size);
    }
    throw IoError(
        fmt::format("{}: no llama2.c tokenizer (tokenizer.bin or tok512.bin) beside the model",
                    model_path),
        "put the model's tokenizer.bin next to its .bin");
  }
  if (path_exists((fs::path(model_path) / "tokenizer.model").string())) {
    const std::string p = join_inside(model_path, "tokenizer.model", model_path);
    require_regular_file(p, "the model's tokenizer.model");
    GgufVocab v = read_sentencepiece(p);
    if (ck.config.bos_token_id >= 0) v.bos_id = ck.config.bos_token_id;
    if (!ck.config.eos_token_ids.empty()) v.eos_id = ck.config.eos_token_ids[0];
    JNAS_CHECK_IO(static_cast<int64_t>(v.tokens.size()) <= ck.config.vocab_size,
                  "{}: {} pieces for a model of vocab_size {}", p, v.tokens.size(),
                  ck.config.vocab_size);
    return v;
  }
  if (path_exists((fs::path(model_path) / "tokenizer.json").string())) {
    const std::string p = join_inside(model_path, "tokenizer.json", model_path);
    require_regular_file(p, "the model's tokenizer.json");
    GgufVocab v = read_bpe_json(p, ck.config.vocab_size);
    if (ck.config.bos_token_id >= 0) {
      v.bos_id = ck.config.bos_token_id;
      v.add_bos = true;
    }
    if (!ck.config.eos_token_ids.empty()) v.eos_id = ck.config.eos_token_ids[0];
    return v;
  }
  // An HF directory written from a llama2.c model (convert, quantize) keeps its tokenizer.bin.
  if (path_exists((fs::path(model_path) / "tokenizer.bin").string())) {
    const std::string p = join_inside(model_path, "tokenizer.bin", model_path);
    require_regular_file(p, "the model's tokenizer.bin");
    return read_llama2c(p, ck.config.vocab_size);
  }
  throw IoError(
      fmt::format(
          "{}: no tokenizer.model, tokenizer.json or tokenizer.bin to embed in the GGUF file",
          model_path),
      "a GGUF file carries its tokenizer; export from a model directory that has one");
}

}  // namespace jointnas::exporting
