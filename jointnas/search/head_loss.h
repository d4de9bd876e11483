// The training loss at the LM head, computed in row chunks so that the [tokens, vocab] logits of
// the student and the teacher never exist in full (at Llama-3.1-8B shapes, 4 x 2048 tokens x 128k
// vocab are 4.2 GB per fp32 copy, and autograd would keep several). A custom autograd function
// forms each chunk's logits once and, when the hidden states need a gradient, the gradient of each
// term in the same pass ([N, H] each; the loss is the graph's last node), so the backward is a
// weighted sum and the logits are never recomputed.
//
//   kd = T^2 / N * sum_n KL(softmax(z_t / T) || softmax(z_s / T))   (Hinton et al.; T^2 keeps the
//        gradient scale independent of T)
//   ce = 1 / N * sum_n -log softmax(z_s)[target_n]
//   total = kd_weight * kd + ce_weight * ce
// with z = hidden @ head^T computed in the hidden states' dtype and then widened to fp32 (fp64 for
// fp64 inputs), exactly as the unchunked `matmul(h, head^T).float()` would.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace jointnas::search {

struct HeadLossOptions {
  double temperature = 1.0;  // distillation temperature T
  double kd_weight = 1.0;    // needs teacher hidden states
  double ce_weight = 0.0;    // needs targets
  int64_t chunk_rows = 1024; // rows of logits alive at once
};

// hidden [N, H] (student, differentiable), head [V, H] (frozen), teacher_hidden [N, H] or
// undefined, targets [N] int64 or undefined. Returns a float vector [4]:
//   {total, kd, ce, top-1 agreement of student and teacher (0 without a teacher)};
// entries 0..2 are differentiable with respect to `hidden`.
at::Tensor head_loss(const at::Tensor& hidden, const at::Tensor& head, const at::Tensor& teacher_hidden,
                     const at::Tensor& targets, const HeadLossOptions& opts);

}  // namespace jointnas::search
