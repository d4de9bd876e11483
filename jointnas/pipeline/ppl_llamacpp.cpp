// llama.cpp as a runtime of `eval ppl`; see ppl_llamacpp.h.
#include "jointnas/pipeline/ppl_llamacpp.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "jointnas/core/error.h"

namespace jointnas::pipeline {
namespace {

void check_no_special(bool parse_special) {
  // Perplexity encodes plain text; llamacpp::Model::tokenize never parses special tokens.
  JNAS_CHECK_CONFIG(!parse_special, "the llama.cpp tokenizer here encodes plain text only (no special tokens)");
}

}  // namespace

std::vector<int32_t> LlamaCppTokenizer::encode(std::string_view text, bool parse_special) const {
  check_no_special(parse_special);
  return m_.tokenize(std::string(text), /*add_special=*/false);
}

std::vector<int32_t> LlamaCppTokenizer::encode_continuation(std::string_view text, bool parse_special) const {
  check_no_special(parse_special);
  return m_.tokenize_continuation(std::string(text));
}

LlamaCppWindowModel::LlamaCppWindowModel(const llamacpp::Model& m, const eval::PplProtocol& p) : m_(m) {
  eval::check_window(*this, p);
  nll_ = m.window_nll(p.window);
}

eval::WindowScores LlamaCppWindowModel::score(const at::Tensor& windows, const std::vector<int64_t>& first) const {
  const int64_t n = windows.size(0), W = windows.size(1);
  const at::Tensor ids = windows.to(at::kInt).contiguous();  // [n, W] int32, llama_token
  eval::WindowScores s;
  s.nll = at::zeros({n, W - 1}, at::kDouble);  // [n, W-1] fp64
  for (int64_t r = 0; r < n; ++r) {
    const int32_t* row = ids.data_ptr<int32_t>() + r * W;
    const std::vector<double> nll = nll_(std::vector<int32_t>(row, row + W), first[static_cast<size_t>(r)]);
    std::copy(nll.begin(), nll.end(), s.nll.data_ptr<double>() + r * (W - 1));
  }
  return s;
}

}  // namespace jointnas::pipeline
