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

  std::vector<int32_t> encode(std::string_view text, bool /*parse_special*/) const override {
    std::vector<int> ids;
    auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!status.ok()) throw IoError(fmt::format("sentencepiece encode failed: {}", status.ToString()));
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int32_t>& ids, bool /*skip_special*/) const override {
    std::vector<int> v;
    for (int32_t id : ids) {
      if (id >= 0 && id < sp_.GetPieceSize()) v.push_back(id);
    }
    std::string out;
    auto status = sp_.Decode(v, &out);
    if (!status.ok()) throw IoError(fmt::format("sentencepiece decode failed: {}", status.ToString()));
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  std::string kind() const override { return "sentencepiece"; }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

}  // namespace jointnas::tok
