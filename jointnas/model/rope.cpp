// On-demand RoPE tables; see rope.h.
#include "jointnas/model/rope.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "jointnas/core/error.h"
#include "jointnas/model/llama.h"

namespace jointnas::model {

int64_t rope_table_positions(int64_t positions, int64_t max_position_embeddings) {
  int64_t n = kRopeBlockRows;
  while (n < positions) n *= 2;
  const int64_t cap = (std::max<int64_t>(max_position_embeddings, 1) + kRopeBlockRows - 1) / kRopeBlockRows *
                      kRopeBlockRows;
  return std::min(n, cap);
}

RopeTables::RopeTables(int64_t head_dim, double theta, const RopeParameters& rope, int64_t max_positions,
                       c10::Device device)
    : head_dim_(head_dim), max_positions_(max_positions), theta_(theta), rope_(rope), device_(device) {}

std::pair<at::Tensor, at::Tensor> RopeTables::get(int64_t positions) const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t have = cos_.defined() ? cos_.size(0) : 0;
  if (have < positions || !cos_.defined()) {
    JNAS_CHECK_CONFIG(positions <= max_positions_, "{} positions exceed max_position_embeddings = {}", positions,
                      max_positions_);
    const int64_t n = rope_table_positions(positions, max_positions_);  // a multiple of the block
    const at::Tensor inv = rope_inv_freq(head_dim_, theta_, rope_).unsqueeze(0);  // [1, hd/2]
    std::vector<at::Tensor> cos_parts, sin_parts;
    if (have > 0) {
      cos_parts.push_back(cos_.cpu());
      sin_parts.push_back(sin_.cpu());
    }
    // Block by block, each of the same shape: a row's value does not depend on the length.
    for (int64_t b = have; b < n; b += kRopeBlockRows) {
      const at::Tensor pos = at::arange(b, b + kRopeBlockRows, at::kLong).to(at::kFloat);  // [B]
      const at::Tensor freqs = pos.unsqueeze(1) * inv;                                     // [B, hd/2]
      const at::Tensor emb = at::cat({freqs, freqs}, -1);                                  // [B, hd]
      cos_parts.push_back(emb.cos());
      sin_parts.push_back(emb.sin());
    }
    cos_ = at::cat(cos_parts, 0).to(device_);
    sin_ = at::cat(sin_parts, 0).to(device_);
  }
  return {cos_, sin_};
}

int64_t RopeTables::positions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cos_.defined() ? cos_.size(0) : 0;
}

}  // namespace jointnas::model
