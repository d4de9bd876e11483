// The Llama runtime: RMSNorm, GQA attention through SDPA, RoPE (default and llama3 scaling),
// SwiGLU, tied or untied head, with per-layer shapes from a LayerSpec list so that pruned and
// heterogeneous models run through the same code. CPU (fp32, bf16) and CUDA (bf16).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "jointnas/model/checkpoint.h"
#include "jointnas/model/config.h"
#include "jointnas/model/rope.h"
#include "jointnas/quant/qlinear.h"

namespace jointnas::model {

struct RuntimeOptions {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;  // compute (and weight) dtype
  // RoPE angles computed as llama.cpp's CPU rope does (rope.h, GgmlRopeAngles): for comparing
  // with llama.cpp on a GGUF export; transformers' angles otherwise.
  bool ggml_rope = false;
};

// Weights of one block. q/k/v and gate/up are stored fused (one GEMM each, fewer launches in
// decode), each in its LayerSpec format; state_dict() hands out HF-named views into them.
struct LayerWeights {
  at::Tensor input_layernorm;           // [H]
  quant::QuantLinear qkv;               // [(nh + 2 * nkv) * hd, H]
  quant::QuantLinear o_proj;            // [H, nh * hd]
  at::Tensor post_attention_layernorm;  // [H]
  quant::QuantLinear gate_up;           // [2 * I, H]  (gate rows first, then up)
  quant::QuantLinear down_proj;         // [H, I]
  // This layer's RoPE cos / sin tables (shared by the layers of one head_dim and theta), grown to
  // the positions used, never to max_position_embeddings up front (issue 26).
  std::shared_ptr<const RopeTables> rope;

  quant::QuantLinear& linear(LinearSlot s);
  const quant::QuantLinear& linear(LinearSlot s) const;
};

// Observation hooks of a forward pass (calibration: GPTQ Hessians, importance statistics).
struct ForwardHooks {
  // Called with the input of every linear, x [B, T, K] in the compute dtype.
  std::function<void(int64_t layer, LinearSlot slot, const at::Tensor& x)> on_linear_input;
  // Called after every block that runs (not for skipped ones) with its input and output residual
  // streams, [B, T, H] each in the compute dtype (block influence for depth importance).
  std::function<void(int64_t layer, const at::Tensor& in, const at::Tensor& out)> on_block;
  // Stop after this block (>= 0): forward() then returns an undefined tensor.
  int64_t stop_after_layer = -1;
};

// Preallocated per-layer K/V: [B, nkv_l, max_len, hd_l] each, in the compute dtype.
struct KVCache {
  std::vector<at::Tensor> k, v;
  int64_t batch = 0;
  int64_t max_len = 0;
  int64_t length = 0;  // tokens already written
};

class LlamaModel {
 public:
  // Builds the runtime from a checkpoint. `specs` defaults to the dense list of the config.
  // Throws IoError naming the checkpoint file for a missing tensor or a shape / dtype that
  // disagrees with config.json (or with the specs).
  static LlamaModel from_checkpoint(const Checkpoint& ckpt, RuntimeOptions opts,
                                    std::vector<LayerSpec> specs = {});
  // Random weights of a given config (benchmarks at Llama-3.1-8B shapes; never for accuracy),
  // generated directly on the device: N(0, 0.02) matrices, unit norms.
  static LlamaModel random(const LlamaConfig& config, RuntimeOptions opts, uint64_t seed,
                           std::vector<LayerSpec> specs = {});

  // ids [B, T] int64 -> logits float32 [B, T, V] (or [B, 1, V] when last_only). With a cache the
  // tokens are appended at positions cache->length ... and the cache length advances.
  at::Tensor forward(const at::Tensor& ids, KVCache* cache = nullptr, bool last_only = false,
                     const ForwardHooks* hooks = nullptr) const;
  // On the CPU: ConfigError ("needs X GiB, more than the Y GiB of memory of this machine", hint:
  // lower `keys`) when a forward pass over B x T tokens cannot fit the machine's memory. forward()
  // calls it; callers that know the flags behind B and T call it first to name them.
  void check_forward_fits(int64_t B, int64_t T, bool last_only, const std::string& keys) const;

  // One decode step with the position given as a device tensor, so that it can be captured in a
  // CUDA graph: ids [B, 1], pos int64 [1] (the position of the new token). Attends over the whole
  // cache with a mask key_pos <= pos; does not touch cache.length. Returns fp32 logits [B, 1, V].
  at::Tensor decode_step_static(const at::Tensor& ids, const at::Tensor& pos, KVCache& cache) const;

  // A prefill without host synchronization, so that it can be captured in a CUDA graph: `dev_ids`
  // [B, T] int64 already on the device and already range-checked by the caller (a forward() of the
  // same ids), appended to `cache` at cache.length; logits of the last position [B, 1, V].
  at::Tensor prefill_static(const at::Tensor& dev_ids, KVCache& cache) const;

  KVCache new_cache(int64_t batch, int64_t max_len) const;

  const LlamaConfig& config() const { return config_; }
  const std::vector<LayerSpec>& specs() const { return specs_; }
  const RuntimeOptions& options() const { return opts_; }
  // HF-named tensors (views into the fused weights). A quantized linear appears as its packed
  // data under `<name>.weight` plus `<name>.weight_scale` (and `<name>.weight_zero`), the layout
  // `jointnas quantize` writes and from_checkpoint reads (docs/formats.md).
  std::map<std::string, at::Tensor> state_dict() const;
  // Logical parameter count (every weight counts once, whatever its format).
  int64_t num_parameters() const;
  // Deployed bytes of all weights (packed data, scales and zeros for quantized linears).
  int64_t weight_bytes() const;

  // Replaces one linear (quantization passes) and records its format in the layer's spec.
  void set_linear(int64_t layer, LinearSlot slot, quant::QuantLinear lin);
  const quant::QuantLinear& linear(int64_t layer, LinearSlot slot) const;

 private:
  at::Tensor block(int64_t l, const at::Tensor& x, const at::Tensor& positions, KVCache* cache,
                   int64_t past, const at::Tensor* static_mask, const ForwardHooks* hooks,
                   int64_t rope_positions) const;
  void build_rope_tables();
  // forward() after its checks: ids on the device and in range.
  at::Tensor run(const at::Tensor& dev_ids, KVCache* cache, bool last_only, const ForwardHooks* hooks) const;

  LlamaConfig config_;
  std::vector<LayerSpec> specs_;
  RuntimeOptions opts_;
  at::Tensor embed_tokens_;  // [V, H]
  at::Tensor norm_;          // [H]
  at::Tensor lm_head_;       // [V, H] (same storage as embed_tokens_ when tied)
  std::vector<LayerWeights> layers_;
};

// An upper estimate of the activation peak of one forward pass over B x T new tokens, beyond the
// weights and the KV cache: the fp32 logits (of the last position only with `last_only`) and one
// more tensor of their size (a loss or a softmax over them), plus the widest block intermediate
// (fused q/k/v or gate/up) three times (input, output, a temporary) in the compute dtype. Checked
// against the machine's memory before allocating (a batch x window whose logits alone needed
// terabytes was a bad_alloc, exit 1, or the OOM killer). Saturates at UINT64_MAX.
uint64_t forward_bytes(const LlamaConfig& config, const std::vector<LayerSpec>& specs, int64_t B, int64_t T,
                       bool last_only, int64_t dtype_bytes);

// RoPE inverse frequencies [hd/2] float32, as transformers computes them (default or llama3).
at::Tensor rope_inv_freq(int64_t head_dim, double theta, const RopeParameters& rope);

}  // namespace jointnas::model
