// GPTQ (Frantar et al. 2022, arXiv:2210.17323): quantizes a linear layer's weight column by
// column, feeding each column's rounding error into the not-yet-quantized columns through the
// inverse Hessian of the layer's reconstruction loss ||X W^T - X Ŵ^T||^2, so that the layer's
// *outputs* on calibration data stay close. The result is an ordinary QuantizedWeight on the
// format's grid, so packing, kernels and dequantize_ref need nothing new.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/quantize.h"

namespace jointnas::quant {

// H = 2/n sum_i x_i x_i^T over the n rows x_i seen so far (the Hessian of the squared output
// error, up to the 1/n that makes it a mean), kept as a running mean as in the GPTQ reference
// code (H <- H n / (n + m); n <- n + m; H += 2/n X^T X), so that many small batches neither
// overflow nor lose the early ones. n counts rows of x [..., K] (tokens), not sequences; GPTQ is
// invariant to the scale of H, so this only fixes a convention.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in_features);

  // x [..., K], any floating dtype and device; accumulated in fp64 on the device of the first
  // batch (every later batch must be on that device).
  void add(const at::Tensor& x);
  // [K, K] fp64; the accumulator's own tensor (no copy: K^2 doubles can be gigabytes), so copy it
  // before modifying it while still adding. Throws if nothing was added.
  at::Tensor hessian() const;
  int64_t samples() const { return samples_; }
  int64_t in_features() const { return in_features_; }

 private:
  int64_t in_features_;
  int64_t samples_ = 0;
  at::Tensor h_;  // [K, K] fp64; undefined until the first add()
};

struct GptqOptions {
  // Added to diag(H), as a fraction of mean(diag(H)): keeps H invertible for rank-deficient
  // calibration data (the paper's lambda, Section 4 "Cholesky reformulation").
  double damp_percent = 0.01;
  // Columns per lazy batch update (Section 4, step 2); the result does not depend on it (up to
  // rounding), only the speed does.
  int64_t block_size = 128;
  // Quantize columns in order of decreasing diag(H) ("act-order"). With a grouped format the
  // grids are then fixed up front from the original W (the reference code's static_groups), so
  // that each group keeps its natural column range and the stored layout is unchanged.
  bool act_order = false;
  // Working precision of the sweep. Undefined: fp64 on the CPU (the reference path; goldens then
  // agree to the last rounding tie), fp32 elsewhere (as the reference code; fp64 is slow on GPUs).
  c10::ScalarType compute_dtype = c10::ScalarType::Undefined;
};

// w [N, K] (any floating dtype, any device), hessian [K, K] (e.g. HessianAccumulator::hessian(),
// any floating dtype, moved to w's device) -> the format's values, on w's device, in the same
// layout as quantize_ref. Formats: WeightType::kInt only (w8a16, w4a16_g128, and w8a8's weights).
// Group grids: with g = format.group_for(K), group j's scale / zero come from
// weight_grid(W[:, j g : (j+1) g]) of the weights as updated by all columns before j g (the
// reference code's static_groups = false); per-row grids (g == K) and act_order use the original
// W. Throws c10::Error for bad arguments and jointnas::Error when H + damping is not positive
// definite even after raising the damping 10x three times.
QuantizedWeight gptq_quantize(const at::Tensor& w, const at::Tensor& hessian,
                              const QuantFormat& format, const GptqOptions& opt = {});

}  // namespace jointnas::quant
