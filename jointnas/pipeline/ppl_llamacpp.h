// llama.cpp as a runtime of `eval ppl` (issue 25): the GGUF's own tokenizer and its windows scored
// through libllama, behind the interfaces the jointnas runtime uses (tok::Tokenizer,
// eval::WindowModel), so that both go through the same streaming, windowing and scoring code.
#pragma once

#include <string>
#include <vector>

#include "jointnas/eval/perplexity.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/tokenizer/tokenizer.h"

namespace jointnas::pipeline {

// The GGUF's tokenizer through libllama (llama_tokenize without BOS/EOS, which the protocol adds).
class LlamaCppTokenizer final : public tok::Tokenizer {
 public:
  explicit LlamaCppTokenizer(const llamacpp::Model& m) : m_(m) {}
  std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const override;
  std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override {
    return m_.detokenize(ids, skip_special);
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(m_.n_vocab()); }
  int32_t bos_id() const override { return static_cast<int32_t>(m_.bos_id()); }
  int32_t eos_id() const override { return static_cast<int32_t>(m_.eos_id()); }
  bool add_bos() const override { return m_.add_bos(); }
  std::string kind() const override { return "llama.cpp"; }

 private:
  const llamacpp::Model& m_;
};

// Windows scored one at a time by llamacpp::Model::window_nll (fp32 KV cache, no flash
// attention; logits only of the predictions scored). A batch of windows costs its tokens and
// their NLLs, [n, W-1] doubles; llama.cpp's own buffers hold one window. No teacher.
class LlamaCppWindowModel final : public eval::WindowModel {
 public:
  // eval::check_window(*this, p) first, then one llama_context of p.window positions.
  LlamaCppWindowModel(const llamacpp::Model& m, const eval::PplProtocol& p);
  int64_t context() const override { return m_.n_ctx_train(); }
  eval::WindowScores score(const at::Tensor& windows, const std::vector<int64_t>& first) const override;

 private:
  const llamacpp::Model& m_;
  llamacpp::Model::WindowNll nll_;
};

}  // namespace jointnas::pipeline
