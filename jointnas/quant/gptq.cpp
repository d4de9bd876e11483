// GPTQ (Frantar et al. 2022, arXiv:2210.17323, Algorithm 1) on the reference quantizers' grids.
// Equation numbers below refer to the paper; "the reference code" is IST-DASLab/gptq's gptq.py.
#include "jointnas/quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::quant {

HessianAccumulator::HessianAccumulator(int64_t in_features) : in_features_(in_features) {
  TORCH_CHECK(in_features > 0, "HessianAccumulator: expected in_features > 0, got ", in_features,
              "; fix: pass the layer's input width (weight.size(1))");
}

void HessianAccumulator::add(const at::Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() >= 1 && at::isFloatingType(x.scalar_type()) &&
                  x.size(-1) == in_features_,
              "HessianAccumulator::add: expected floating activations [..., ", in_features_,
              "], got ", x.defined() ? x.sizes().vec() : std::vector<int64_t>{}, " ",
              x.defined() ? x.scalar_type() : at::kFloat,
              "; fix: pass the layer's input (not its output), in a floating dtype");
  const int64_t m = x.numel() / in_features_;
  if (m == 0) return;
  if (!h_.defined()) {
    h_ = at::zeros({in_features_, in_features_}, x.options().dtype(at::kDouble));
  }
  TORCH_CHECK(x.device() == h_.device(), "HessianAccumulator::add: expected activations on ",
              h_.device(), " (where the first batch was), got ", x.device(),
              "; fix: keep every calibration batch on one device");
  // Running mean (the reference code's add_batch): rescale the old mean to the new count first,
  // so that H stays O(|x|^2) however many rows are added. fp64 because a long calibration run
  // adds many terms of similar size.
  const at::Tensor x2 = x.reshape({m, in_features_}).to(at::kDouble);  // [m, K]
  h_.mul_(static_cast<double>(samples_) / static_cast<double>(samples_ + m));
  samples_ += m;
  h_.addmm_(x2.t(), x2, /*beta=*/1.0, /*alpha=*/2.0 / static_cast<double>(samples_));
}

at::Tensor HessianAccumulator::hessian() const {
  TORCH_CHECK(samples_ > 0,
              "HessianAccumulator::hessian: expected at least one row of activations, got none; "
              "fix: run calibration batches through the layer (add()) before quantizing it");
  return h_;
}

namespace {

void check_inputs(const at::Tensor& w, const at::Tensor& h, const QuantFormat& f,
                  const GptqOptions& opt) {
  TORCH_CHECK(f.weight == WeightType::kInt,
              "gptq_quantize: expected an integer weight format (w8a16, w4a16_g128, w8a8), got ",
              f.name, "; fix: GPTQ needs an integer grid, use quantize_ref for ", f.name);
  TORCH_CHECK(w.defined() && w.dim() == 2 && at::isFloatingType(w.scalar_type()),
              "gptq_quantize: expected a floating weight [N, K], got ",
              w.defined() ? w.sizes().vec() : std::vector<int64_t>{}, " ",
              w.defined() ? w.scalar_type() : at::kFloat, "; fix: pass the layer's weight");
  const int64_t K = w.size(1);
  TORCH_CHECK(h.defined() && h.dim() == 2 && h.size(0) == K && h.size(1) == K &&
                  at::isFloatingType(h.scalar_type()),
              "gptq_quantize: expected a floating Hessian [", K, ", ", K,
              "] for a weight with K = ", K, " input features, got ",
              h.defined() ? h.sizes().vec() : std::vector<int64_t>{},
              "; fix: accumulate it with HessianAccumulator(weight.size(1)) on this layer's input");
  TORCH_CHECK(at::isfinite(h).all().item<bool>(),
              "gptq_quantize: expected a finite Hessian, got NaN or Inf; fix: check the "
              "calibration activations (overflow in fp16?)");
  TORCH_CHECK(opt.damp_percent >= 0.0 && std::isfinite(opt.damp_percent),
              "gptq_quantize: expected damp_percent >= 0, got ", opt.damp_percent,
              "; fix: use about 0.01");
  TORCH_CHECK(opt.block_size > 0, "gptq_quantize: expected block_size > 0, got ", opt.block_size,
              "; fix: use 128");
  TORCH_CHECK(opt.compute_dtype == c10::ScalarType::Undefined || opt.compute_dtype == at::kFloat ||
                  opt.compute_dtype == at::kDouble,
              "gptq_quantize: expected compute_dtype float32, float64 or Undefined, got ",
              opt.compute_dtype, "; fix: leave it Undefined (fp64 on CPU, fp32 elsewhere)");
}

// U = upper Cholesky factor of (H + lambda I)^-1, i.e. H^-1 = U^T U. Row j of U, divided by U_jj,
// is exactly the row of the inverse Hessian of the columns >= j that the sweep's update needs
// (Section 4, "Cholesky reformulation"), so one factorization replaces the K rank-one downdates
// of eq. (3). lambda = damp * mean(diag H); when the factorization fails or is not finite
// (H numerically indefinite, e.g. a huge spread of feature scales in fp32) the damping is raised
// 10x, up to 3 times, like the fallbacks of common GPTQ tooling.
at::Tensor inverse_hessian_factor(const at::Tensor& h, double damp_percent) {
  const at::Tensor mean_diag = h.diagonal().mean();
  double damp = damp_percent;
  for (int attempt = 0; attempt <= 3; ++attempt, damp *= 10.0) {
    at::Tensor hd = h.clone();
    hd.diagonal().add_(mean_diag * damp);
    auto [l, info] = at::linalg_cholesky_ex(hd);
    if (info.item<int64_t>() != 0 || !at::isfinite(l).all().item<bool>()) continue;
    auto [u, info_u] = at::linalg_cholesky_ex(at::cholesky_inverse(l), /*upper=*/true);
    if (info_u.item<int64_t>() == 0 && at::isfinite(u).all().item<bool>()) return u;
  }
  throw Error(fmt::format("gptq_quantize: the Hessian [{0} x {0}] is not positive definite even "
                          "with damping {1:g} x mean(diag H)",
                          h.size(0), damp / 10.0),
              "the Hessian must be a sum of x x^T (HessianAccumulator); check the calibration "
              "activations, or raise GptqOptions::damp_percent");
}

}  // namespace

QuantizedWeight gptq_quantize(const at::Tensor& w, const at::Tensor& hessian, const QuantFormat& f,
                              const GptqOptions& opt) {
  check_inputs(w, hessian, f, opt);
  const int64_t N = w.size(0), K = w.size(1);
  const int64_t g = f.group_for(K);
  c10::ScalarType dt = opt.compute_dtype;
  if (dt == c10::ScalarType::Undefined) dt = w.device().is_cpu() ? at::kDouble : at::kFloat;
  at::Tensor W = w.to(dt, /*non_blocking=*/false, /*copy=*/true).contiguous();  // [N, K], updated
  at::Tensor H = hessian.to(w.device(), dt, /*non_blocking=*/false, /*copy=*/true);  // [K, K]

  // Dead inputs (always zero in the calibration data): their weights never reach the output, so
  // they are set to zero (which every grid represents exactly) and H_ii = 1 keeps H invertible.
  const at::Tensor dead = H.diagonal() == 0;  // [K] bool
  H.diagonal().masked_fill_(dead, 1.0);
  W.masked_fill_(dead.unsqueeze(0), 0.0);

  QuantizedWeight out;
  out.format = &f;
  out.group = g;
  // Per-row grids, and act_order's static groups, are fixed before the sweep from W itself (with
  // dead columns zeroed: their values would only widen a range they do not use).
  const bool static_grid = g == K || opt.act_order;
  if (static_grid) {
    QuantizedWeight grid = weight_grid(W, f, g);
    out.scale = grid.scale;
    out.zero = grid.zero;
  } else {
    out.scale = at::empty({N, K / g}, w.options().dtype(f.scale_dtype));
    if (f.asymmetric) out.zero = at::empty({N, K / g}, w.options().dtype(at::kByte));
  }
  // fp32 copies of the grid, as quantize_on_grid reads it (filled per group when not static).
  at::Tensor s32 = out.scale.to(at::kFloat);                               // [N, G]
  at::Tensor z32 = f.asymmetric ? out.zero.to(at::kFloat) : at::Tensor();  // [N, G]

  // col_of[j]: the original index of the j-th column of the sweep (its group is col_of[j] / g).
  std::vector<int64_t> col_of(K);
  at::Tensor perm;  // [K] int64 on w's device
  if (opt.act_order) {
    // Columns with large H_ii (inputs with the most energy) first, while many columns remain to
    // absorb their error (the reference code's --act-order heuristic).
    perm = at::argsort(H.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true);
    W = W.index_select(1, perm);
    H = H.index_select(0, perm).index_select(1, perm);
    const at::Tensor perm_cpu = perm.cpu();
    std::copy_n(perm_cpu.data_ptr<int64_t>(), K, col_of.begin());
  } else {
    for (int64_t j = 0; j < K; ++j) col_of[j] = j;
  }

  const at::Tensor U = inverse_hessian_factor(H, opt.damp_percent);  // [K, K] upper
  const double qmin = f.qmin(), qmax = f.qmax();
  at::Tensor Q = at::empty({N, K}, w.options().dtype(at::kFloat));  // integers, sweep order

  // Lazy batch updates (Section 4, step 2): inside a block of B columns every quantized column
  // updates only the rest of the block (W1); the columns after the block get all B updates at
  // once as one matmul (W[:, i2:] -= Err1 U[i1:i2, i2:]), which is the same arithmetic reordered
  // but turns K rank-one updates of the whole matrix into K / B matrix products.
  const int64_t B = opt.block_size;
  for (int64_t i1 = 0; i1 < K; i1 += B) {
    const int64_t i2 = std::min(i1 + B, K), count = i2 - i1;
    at::Tensor W1 = W.slice(1, i1, i2).clone();  // [N, count], current weights of the block
    at::Tensor Err1 = at::zeros({N, count}, W.options());       // [N, count], (w - q) / U_jj
    const at::Tensor U1 = U.slice(0, i1, i2).slice(1, i1, i2);  // [count, count]
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = i1 + i, grp = col_of[j] / g;
      if (!static_grid && col_of[j] % g == 0) {
        // Group start: the grid of the group's weights as they are now, i.e. updated by every
        // column before j. Inside the block that is W1; columns past the block (a group longer
        // than the rest of the block) still lack this block's pending update, applied to a copy
        // here so that the result does not depend on block_size.
        const int64_t end = j + g;
        at::Tensor cur = W1.slice(1, i, std::min(end, i2) - i1);
        if (end > i2) {
          at::Tensor tail = W.slice(1, i2, end) -
                            at::matmul(Err1.slice(1, 0, i), U.slice(0, i1, j).slice(1, i2, end));
          cur = at::cat({cur, tail}, 1);
        }
        const QuantizedWeight grid = weight_grid(cur, f, g);  // scale, zero [N, 1]
        out.scale.select(1, grp).copy_(grid.scale.select(1, 0));
        s32.select(1, grp).copy_(grid.scale.select(1, 0));
        if (f.asymmetric) {
          out.zero.select(1, grp).copy_(grid.zero.select(1, 0));
          z32.select(1, grp).copy_(grid.zero.select(1, 0));
        }
      }
      // quantize_on_grid's rounding: fp32 true division, half-to-even, + zero, clamp.
      const at::Tensor wcol = W1.select(1, i);  // [N]
      const at::Tensor s = s32.select(1, grp);
      at::Tensor q = at::round(wcol.to(at::kFloat) / s);
      if (f.asymmetric) q = q + z32.select(1, grp);
      q = at::clamp(q, qmin, qmax);
      Q.select(1, j).copy_(q);
      at::Tensor dq = f.asymmetric ? (q - z32.select(1, grp)) * s : q * s;  // dequantize_ref
      // Eq. (3) with H^-1 = U^T U: delta_F = -(w_j - q_j) / U_jj * U_j,F for the columns F >= j.
      const at::Tensor err = (wcol - dq.to(dt)) / U1.select(0, i).select(0, i);  // [N]
      // A [N, 1] x [1, count - i] matrix product rather than addr_: a BLAS call, ~30x faster on
      // the CPU than addr_'s elementwise kernel (measured, K = 1024 fp64), and the same on GPUs.
      W1.slice(1, i).addmm_(err.unsqueeze(1), U1.select(0, i).slice(0, i).unsqueeze(0),
                            /*beta=*/1.0, /*alpha=*/-1.0);
      Err1.select(1, i).copy_(err);
    }
    if (i2 < K) {
      W.slice(1, i2).addmm_(Err1, U.slice(0, i1, i2).slice(1, i2), /*beta=*/1.0, /*alpha=*/-1.0);
    }
  }

  if (opt.act_order) Q = Q.index_select(1, at::argsort(perm));
  out.q = Q.to(at::kChar);
  return out;
}

}  // namespace jointnas::quant
