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

// Calibration texts (importance, quantize --calib) are read up to this many tokens: windows are
// sampled from those (128 MiB of ids; wikitext-2's training text is about 2.5M tokens), so a
// 1 GB calibration file costs no more than that.
inline constexpr int64_t kCalibrationMaxTokens = int64_t(1) << 24;

// The token stream of the text file at `path` (paragraph documents), cut to its first
// `max_tokens` tokens when max_tokens > 0. The file is read and tokenized in bounded blocks, and
// only as far as max_tokens needs (eval/text_stream.h).
std::vector<int64_t> load_token_stream(const std::string& path, const tok::Tokenizer& tok,
                                       const model::LlamaConfig& config, int64_t max_tokens = 0);

}  // namespace jointnas::data
