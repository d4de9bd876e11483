// Text -> token streams for the training and calibration stages (importance, search, finetune,
// quantize): the documents of a text file, each as BOS + ids + EOS under the model's own special
// tokens, concatenated (the stream `eval ppl` scores, docs/eval.md). Windows are cut from it by
// the consumers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/model/config.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::data {

// The model's BOS / EOS: config.json's ids when it sets them, else the tokenizer's.
int64_t bos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok);
int64_t eos_id(const model::LlamaConfig& config, const tok::Tokenizer& tok);

// The token stream of the text file at `path` (paragraph documents), cut to its first
// `max_tokens` tokens when max_tokens > 0.
std::vector<int64_t> load_token_stream(const std::string& path, const tok::Tokenizer& tok,
                                       const model::LlamaConfig& config, int64_t max_tokens = 0);

}  // namespace jointnas::data
