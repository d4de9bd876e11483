// Model-level quantization: every linear of a LlamaModel to its planned format, by
// round-to-nearest or by GPTQ on calibration windows (sequentially, block by block, so that each
// block is calibrated on the outputs of the already quantized blocks before it).
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/core/json_util.h"
#include "jointnas/model/llama.h"
#include "jointnas/quant/gptq.h"

namespace jointnas::compress {

struct QuantizePlan {
  // Per layer, the formats of qkv, o, gate_up, down (registry names).
  std::vector<std::array<std::string, 4>> formats;
  std::string method = "rtn";  // "rtn" or "gptq" (GPTQ applies to the integer weight formats;
                               // fp8 layers are always round-to-nearest)
  quant::GptqOptions gptq;
  int64_t batch = 8;           // calibration windows per forward
};

// Uniform plan: `format` everywhere.
QuantizePlan uniform_plan(int64_t num_layers, const std::string& format);
// Per-layer plan from JSON: a list of num_layers objects with optional keys "qkv", "o",
// "gate_up", "down" (missing keys take `default_format`). Names are checked against the registry.
QuantizePlan plan_from_json(const Json& j, int64_t num_layers, const std::string& default_format,
                            const std::string& source);

struct LinearReport {
  int64_t layer = 0;
  std::string slot;    // "qkv", "o", "gate_up", "down"
  std::string format;
  std::string method;  // "rtn", "gptq", or "keep"
  int64_t out_features = 0, in_features = 0;
  double seconds = 0;
};

struct QuantizeReport {
  std::vector<LinearReport> linears;
  int64_t bytes_before = 0, bytes_after = 0;
  int64_t calibration_tokens = 0;
  double seconds = 0;
  Json to_json() const;
};

// Quantizes `m` in place. The model must hold unquantized (bf16 / float) linears. `calib` [n, T]
// int64 token windows are required for method "gptq". `progress(layer, num_layers)` after each
// block.
QuantizeReport quantize_model(model::LlamaModel& m, const QuantizePlan& plan,
                              const at::Tensor& calib = {},
                              const std::function<void(int64_t, int64_t)>& progress = {});

// `n` windows of `len` tokens at seeded random offsets of `stream` (GPTQ's calibration recipe).
at::Tensor sample_windows(const std::vector<int64_t>& stream, int64_t n, int64_t len, uint64_t seed);

}  // namespace jointnas::compress
