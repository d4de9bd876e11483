// RoPE cos / sin tables of one (head_dim, theta), grown on demand to the positions used: a
// config.json saying max_position_embeddings = 2^24 built about 15 GB of tables up front (issue
// 26), whatever context was used. Rows are computed in fixed blocks of kRopeBlockRows positions,
// so a row's value never depends on the table's length: growing never changes a value.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "jointnas/model/config.h"

namespace jointnas::model {

inline constexpr int64_t kRopeBlockRows = 256;

// RoPE angles as llama.cpp's CPU rope computes them (ggml-cpu ops.cpp, ggml_rope_cache_init):
// theta_i(p) = p * s^i by repeated fp32 products with s = powf(theta, -2 / d) of the model's own
// theta and head size d, then cosf / sinf. Mathematically the transformers angles p * inv_freq_i;
// in fp32 they differ by up to ~1e-5 rad at position 500, enough to flip activation codes of a
// ggml-quantized model (docs/export.md). A head cut to hd < d takes the first hd / 2 angles of d.
struct GgmlRopeAngles {
  bool on = false;
  float theta = 0.0f;   // the model's rope_theta (the GGUF's rope.freq_base, an f32)
  int64_t head_dim = 0; // the model's head size (GGUF's rope.dimension_count)
};

// Rows a table holds after serving `positions` positions: the next power of two of
// max(positions, kRopeBlockRows) (amortized growth), at most max_position_embeddings rounded up
// to a whole block.
int64_t rope_table_positions(int64_t positions, int64_t max_position_embeddings);

class RopeTables {
 public:
  RopeTables(int64_t head_dim, double theta, const RopeParameters& rope, int64_t max_positions, c10::Device device,
             GgmlRopeAngles ggml = {});

  // cos, sin [P, head_dim] fp32 on the device with P >= positions. Thread-safe: a grown table
  // replaces the old one for later calls; tensors already handed out stay valid. Grow it before
  // a CUDA graph capture (LlamaModel::new_cache does), so that no growth is captured. Throws
  // ConfigError when positions exceed max_position_embeddings.
  std::pair<at::Tensor, at::Tensor> get(int64_t positions) const;
  // Rows held now (0 before the first get).
  int64_t positions() const;

 private:
  int64_t head_dim_, max_positions_;
  double theta_;
  RopeParameters rope_;
  c10::Device device_;
  GgmlRopeAngles ggml_;
  mutable std::mutex mu_;
  mutable at::Tensor cos_, sin_;  // [P, head_dim] fp32
};

}  // namespace jointnas::model
