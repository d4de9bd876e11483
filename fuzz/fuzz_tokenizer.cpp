// Fuzz target: tokenizer files, loaded the way a model directory is (load_tokenizer), then used:
// encode (with and without special tokens) and decode. The file's kind is told from its first
// bytes, as a user's directory would name it: '{' -> tokenizer.json (byte-level BPE); a
// SentencePiece protobuf (0x0A) or a tiktoken ranks text -> tokenizer.model (load_tokenizer
// tells those two apart itself); anything else -> tokenizer.bin (llama2.c).
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "jointnas/tokenizer/tokenizer.h"

using namespace jointnas;

namespace {

const char* file_name_for(const uint8_t* data, size_t size) {
  if (size == 0) return "tokenizer.bin";
  if (data[0] == '{') return "tokenizer.json";
  if (data[0] == 0x0A) return "tokenizer.model";
  // tiktoken: "base64 rank" on the first line.
  size_t i = 0;
  while (i < size && (std::isalnum(data[i]) || data[i] == '+' || data[i] == '/' || data[i] == '=')) ++i;
  if (i > 0 && i < size && data[i] == ' ') return "tokenizer.model";
  return "tokenizer.bin";
}

// Mixed scripts, digits, whitespace runs, special-token spellings and invalid UTF-8.
const std::string kSample =
    "Once upon a time, Lily saw 3 cats!  \t\n\n<s> </s> <|begin_of_text|>Hi<|eot_id|> "
    "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xff\xfe\xc3 x\xe2\x82";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fuzz::ScratchDir scratch;
  for (const char* n : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) scratch.remove(n);
  scratch.write(file_name_for(data, size),
                std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_accept_or_reject([&] {
    const auto tok = tok::load_tokenizer(scratch.path());
    const int32_t n = tok->vocab_size();
    if (n <= 0) fuzz::fail("a loaded tokenizer with an empty vocabulary");
    if (tok->bos_id() >= n || tok->eos_id() >= n) fuzz::fail("BOS / EOS outside the vocabulary");
    // The input's own first bytes as text too: invalid UTF-8, NULs, long runs.
    const std::string own(reinterpret_cast<const char*>(data), std::min<size_t>(size, 96));
    for (const std::string* text : {&kSample, &own}) {
      for (bool special : {false, true}) {
        const std::vector<int32_t> ids = tok->encode(*text, special);
        for (int32_t id : ids) {
          if (id < 0 || id >= n) fuzz::fail("encode produced id " + std::to_string(id) + " outside [0, " + std::to_string(n) + ")");
        }
        (void)tok->decode(ids, true);
        (void)tok->decode(ids, false);
      }
    }
    // Every id, plus out-of-range ones (padded embedding rows decode to nothing).
    std::vector<int32_t> all;
    for (int32_t id = -2; id < std::min(n, 4096) + 2; ++id) all.push_back(id);
    (void)tok->decode(all, true);
    (void)tok->decode(all, false);
    for (const char* t : {"<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>", " ", "", "a"}) {
      const int32_t id = tok->token_to_id(t);
      if (id < -1 || id >= n) fuzz::fail(std::string("token_to_id(\"") + t + "\") = " + std::to_string(id));
    }
  });
  return 0;
}
