// On-demand RoPE tables; see rope.h.
#include "jointnas/model/rope.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
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
                       c10::Device device, GgmlRopeAngles ggml)
    : head_dim_(head_dim), max_positions_(max_positions), theta_(theta), rope_(rope), device_(device), ggml_(ggml) {
  JNAS_CHECK_CONFIG(!ggml_.on || (rope_.rope_type == "default" && ggml_.head_dim >= head_dim),
                    "ggml RoPE angles need the default RoPE and a head size within the model's ({} of {})",
                    head_dim, ggml_.head_dim);
}

namespace {

// [B, hd] rows of positions b .. b + B - 1, ggml's way (GgmlRopeAngles), in the rotate-half
// layout: pair i at dims i and i + hd / 2.
std::pair<at::Tensor, at::Tensor> ggml_block(int64_t b, int64_t rows, int64_t hd, const GgmlRopeAngles& g) {
  at::Tensor c = at::empty({rows, hd}, at::kFloat), s = at::empty({rows, hd}, at::kFloat);
  const float scale = std::pow(g.theta, -2.0f / static_cast<float>(g.head_dim));
  float* cp = c.data_ptr<float>();
  float* sp = s.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float th = static_cast<float>(b + r);
    for (int64_t i = 0; i < hd / 2; ++i) {
      cp[r * hd + i] = cp[r * hd + i + hd / 2] = std::cos(th);
      sp[r * hd + i] = sp[r * hd + i + hd / 2] = std::sin(th);
      th *= scale;
    }
  }
  return {c, s};
}

}  // namespace

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
      if (ggml_.on) {
        auto [c, s] = ggml_block(b, kRopeBlockRows, head_dim_, ggml_);
        cos_parts.push_back(c);
        sin_parts.push_back(s);
        continue;
      }
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
