// Text -> token streams; see token_stream.h.
#include "jointnas/data/token_stream.h"

#include "jointnas/core/mapped_file.h"
#include "jointnas/eval/perplexity.h"

namespace jointnas::data {

int64_t bos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok) {
  return config.bos_token_id >= 0 ? config.bos_token_id : tok.bos_id();
}

int64_t eos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok) {
  return !config.eos_token_ids.empty() ? config.eos_token_ids[0] : tok.eos_id();
}

std::vector<int64_t> load_token_stream(const std::string& path, const tok::Tokenizer& tok,
                                       const model::LlamaConfig& config, int64_t max_tokens) {
  const eval::PplProtocol p;
  std::vector<int64_t> stream = eval::build_stream(eval::split_documents(read_text_file(path), p.documents), tok, p,
                                                   bos_id(config, tok), eos_id(config, tok));
  if (max_tokens > 0 && static_cast<int64_t>(stream.size()) > max_tokens) stream.resize(static_cast<size_t>(max_tokens));
  return stream;
}

}  // namespace jointnas::data
