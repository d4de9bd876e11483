// SentencePiece models (ref-17m, Llama-2) through libsentencepiece: the reference implementation
// itself, so ids equal Python's sentencepiece by construction.
#include <sentencepiece_processor.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    // Read the bytes ourselves so that a missing file and a corrupt one get our messages.
    const std::string proto = read_text_file(path);
    auto status = sp_.LoadFromSerializedProto(proto);
    if (!status.ok()) {
      throw IoError(fmt::format("{}: not a valid SentencePiece model: {}", path, status.ToString()),
                    "tokenizer.model must be a SentencePiece protobuf (or a tiktoken ranks file)");
    }
    JNAS_CHECK_IO(sp_.GetPieceSize() > 0, "{}: SentencePiece model has no pieces", path);
  }

  // parse_special is ignored: SentencePiece never maps text to control tokens (<s>, </s>), and its
  // user-defined symbols are always matched; this is what Python sentencepiece does.
  std::vector<int32_t> encode(std::string_view text, bool /*parse_special*/) const override {
    std::vector<int> ids;
    auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!status.ok())
      throw Error(fmt::format("sentencepiece encode failed: {}", status.ToString()));
    return {ids.begin(), ids.end()};
  }

  // SentencePiece adds a dummy-prefix "▁" at the start of every text, so a piece " world" alone
  // would read "▁▁world" (or drop its space). Encode "a" + text instead and keep the pieces that
  // lie in `text`: at a safe cut (" " then a printable character) no piece spans the two, and the
  // dummy prefix goes to "a". If one does span them (a vocabulary with pieces across spaces, or a
  // forced cut), the plain encoding is returned, as the cut was not safe for this vocabulary.
  std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special) const override {
    std::string probe = "a";
    probe.append(text);
    sentencepiece::ImmutableSentencePieceText spt;
    auto status = sp_.Encode(absl::string_view(probe.data(), probe.size()), spt.mutable_proto());
    if (!status.ok()) throw Error(fmt::format("sentencepiece encode failed: {}", status.ToString()));
    std::vector<int32_t> ids;
    for (const auto& p : spt.pieces()) {
      if (p.end() <= 1 && p.begin() < 1) continue;  // the probe's "▁a" (and the dummy prefix)
      if (p.begin() < 1) return encode(text, parse_special);
      ids.push_back(static_cast<int32_t>(p.id()));
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string piece;
      auto status = sp_.Decode(run, &piece);
      if (!status.ok())
        throw Error(fmt::format("sentencepiece decode failed: {}", status.ToString()));
      out += piece;
      run.clear();
    };
    for (int32_t id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize()) continue;  // padded embedding rows decode to nothing
      if (!skip_special && sp_.IsControl(id)) {
        // SentencePiece drops control tokens; render them as their piece text instead.
        flush();
        out += sp_.IdToPiece(id);
        continue;
      }
      run.push_back(id);
    }
    flush();
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  std::string kind() const override { return "sentencepiece"; }
  int32_t token_to_id(std::string_view token) const override {
    // PieceToId answers unk for unknown pieces; only an exact round trip is a real match.
    const int id = sp_.PieceToId(absl::string_view(token.data(), token.size()));
    return id >= 0 && sp_.IdToPiece(id) == token ? id : -1;
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

}  // namespace jointnas::tok
