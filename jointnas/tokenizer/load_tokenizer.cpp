// Finds and loads the tokenizer of a model directory.
#include <filesystem>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/paths.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::tok {
namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  auto in = [&](const char* name) { return (fs::path(dir) / name).string(); };
  if (file_exists(in("tokenizer.model"))) return load_sentencepiece(in("tokenizer.model"));
  if (file_exists(in("tokenizer.bin"))) {
    int32_t vocab = -1;
    if (file_exists(in("config.json"))) {
      Json c = read_json_file(in("config.json"));
      vocab = static_cast<int32_t>(get_int(c, "vocab_size", in("config.json")).value_or(-1));
    }
    return load_llama2c_tokenizer(in("tokenizer.bin"), vocab);
  }
  if (file_exists(in("tokenizer.json")) || file_exists(in("vocab.bpe"))) {
    throw IoError(fmt::format("{}: byte-level BPE tokenizers (tokenizer.json, GPT-2 files) are not "
                              "supported yet",
                              dir),
                  "supported now: SentencePiece tokenizer.model and llama2.c tokenizer.bin");
  }
  throw IoError(fmt::format("no tokenizer in '{}'", dir),
                "expected tokenizer.model (SentencePiece) or tokenizer.bin (llama2.c)");
}

}  // namespace jointnas::tok
