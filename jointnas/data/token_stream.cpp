// Text -> token streams; see token_stream.h.
#include "jointnas/data/token_stream.h"

#include "jointnas/eval/text_stream.h"

namespace jointnas::data {

int64_t bos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok) {
  return config.bos_token_id >= 0 ? config.bos_token_id : tok.bos_id();
}

int64_t eos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok) {
  return !config.eos_token_ids.empty() ? config.eos_token_ids[0] : tok.eos_id();
}

std::vector<int64_t> load_token_stream(const std::string& path, const tok::Tokenizer& tok,
                                       const model::LlamaConfig& config, int64_t max_tokens) {
  // Read and tokenized a block at a time, and only up to max_tokens (issue 26: a 1 GB one-line
  // file used to be read whole and tokenized at once, 15-25 GB).
  return eval::read_token_stream(path, tok, eval::PplProtocol{}, bos_id(config, tok), eos_id(config, tok),
                                 max_tokens);
}

}  // namespace jointnas::data
