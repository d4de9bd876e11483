// The expected linear of the supernet, y = sum_f p_f ((a b^T) * FQ_f(W)) Qact_f(x), in the
// factorized form: one custom autograd function that forms (a b^T) * sum_f p_f FQ_f(W) for a
// chunk of weight rows at a time (no stored masks, no weight-sized temporaries beyond a chunk),
// one matmul per activation quantizer, and saves only x, p, a, b. The backward recomputes the
// chunks and gets every gradient from G = g^T Qact(x) per chunk: d/da, d/db, d/dp_f are row,
// column and full sums of G * (masked) weights; d/dx is one matmul g W_mix with the mixture over
// every format (straight-through activation quantizers), not one per activation quantizer.
// The weight is frozen (no gradient); adapters run beside it (supernet.cpp).
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/quant/format.h"

namespace jointnas::search {

struct MixedWeight {
  at::Tensor weight;                              // [N, K], compute dtype, frozen
  std::vector<const quant::QuantFormat*> formats;  // the decision's candidates
  std::vector<int64_t> groups;                    // quantization group per format
  int64_t row_chunk = 2048;
  // Formats grouped by activation quantizer (one matmul per group) and each group's indices into
  // the probabilities, on the weight's device; filled by prepare() once the formats are set.
  std::vector<std::vector<size_t>> classes;
  std::vector<at::Tensor> class_index;
  std::vector<size_t> all_formats;  // 0 .. F-1
  void prepare();
};

// x [..., K], p [F] (probabilities of the formats), a [N], b [K] (fp32 masks) -> [..., N].
at::Tensor mixed_linear_factorized(const at::Tensor& x, const MixedWeight& w, const at::Tensor& p,
                                   const at::Tensor& a, const at::Tensor& b);

}  // namespace jointnas::search
