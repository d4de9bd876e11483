// The weight-entangled supernet over a SearchSpace (method.md; docs/search.md). Every candidate
// shares the importance-permuted pretrained weights: a smaller choice is a prefix slice. Each
// decision has architecture logits (`arch_*`); a relaxation turns them into probabilities, and
// the network computes the expectation of every linear over its candidates:
//   y = sum_f p_f ((a b^T) * FQ_f(W)) Qact_f(x)
// with a = P(output row active), b = P(input column active) (cumulative probabilities of the
// prefix choices), FQ_f / Qact_f the format's fake quantizers. Three implementations of that one
// expression (`Mixing`) are interchangeable and tested against each other. The depth gate of a
// block folds into the output masks of o_proj and down_proj, so a dropped block is exactly the
// identity; RMSNorm divides by the expected active width.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"
#include "jointnas/search/space.h"

namespace jointnas::search {

// loop: per candidate slice, pad, fake-quantize, multiply and accumulate (TangleNAS style);
// dense_mask: stored binary masks per choice at weight shape, combined with the probabilities
// (the paper's vectorization); factorized: the rank-1 expected mask a b^T applied on the fly to
// row chunks of the weight in a custom autograd function that saves only its input (ours).
// plain: no mixing at all, y = x W^T (+ LoRA) with autograd; only for a space with a single
// architecture in bf16 (the dense model as the benchmarks' reference, or LoRA finetuning).
enum class Mixing { kLoop, kDenseMask, kFactorized, kPlain };
Mixing parse_mixing(const std::string& name);  // "loop" | "dense_mask" | "factorized" | "plain"
const char* mixing_name(Mixing m);

// softmax: DARTS-like; gumbel: Gumbel-softmax at a temperature; hard: a Gumbel sample, one-hot in
// the forward pass with the soft gradient (straight-through, GDAS-like).
enum class Relaxation { kSoftmax, kGumbel, kHard };
Relaxation parse_relaxation(const std::string& name);

// Probabilities (1-D, over a decision's choices in the space's ascending order).
struct ArchDist {
  at::Tensor hidden, depth;
  std::vector<at::Tensor> kv_groups, head_dims, intermediate;
  std::vector<std::array<at::Tensor, kNumFormatSlots>> formats;
};

struct SupernetOptions {
  Mixing mixing = Mixing::kFactorized;
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;  // weights and activations (bf16 on CUDA)
  int64_t lora_rank = 0;                // 0: no adapters
  double lora_alpha = 16.0;             // adapter scale alpha / rank
  int64_t row_chunk = 2048;             // weight rows per step of the factorized path
};

class Supernet {
 public:
  // `ckpt`: a float checkpoint, importance-permuted (jointnas importance) so that prefixes are
  // the best sub-matrices. `block_rank[l]`: the rank of layer l in the depth order (rank 0 =
  // dropped last; importance.json lists the inverse); identity if empty. Architecture logits start at zero (uniform), LoRA B at zero, LoRA A ~ N(0, 1/r).
  Supernet(const model::Checkpoint& ckpt, SearchSpace space, std::vector<int64_t> block_rank,
           SupernetOptions opts, uint64_t seed = 0);
  ~Supernet();
  Supernet(Supernet&&) noexcept;

  // Architecture logits, named arch_hidden, arch_depth, layers.<l>.arch_{kv_groups, head_dim,
  // intermediate, format_<slot>} (only decisions with more than one choice are listed).
  std::vector<std::pair<std::string, at::Tensor>> named_arch_parameters() const;
  // LoRA adapters, one pair per fused linear: model.layers.<l>.{self_attn.qkv_proj,
  // self_attn.o_proj, mlp.gate_up_proj, mlp.down_proj}.lora_{A,B} (empty when lora_rank == 0).
  std::vector<std::pair<std::string, at::Tensor>> named_lora_parameters() const;
  // The frozen weights under their Hugging Face names (views into the fused tensors).
  std::map<std::string, at::Tensor> named_weights() const;

  // Probabilities from the logits. `temperature` applies to gumbel / hard; `gen` seeds the noise.
  ArchDist distribution(Relaxation r, double temperature = 1.0,
                        std::optional<at::Generator> gen = std::nullopt) const;
  // One-hot probabilities of a discrete architecture (on the supernet's device).
  ArchDist one_hot(const Arch& arch) const;
  // The argmax of every decision's logits.
  Arch argmax() const;

  // ids [B, T] -> logits float32 [B, T, V], differentiable in the probabilities and adapters.
  at::Tensor forward(const at::Tensor& ids, const ArchDist& dist) const;
  // The final normed hidden states [B, T, H] (dtype of the supernet); forward() = hidden @ head^T.
  // With head_loss() (search/head_loss.h) the full logits never exist.
  at::Tensor hidden(const at::Tensor& ids, const ArchDist& dist) const;
  // The original model's final hidden states (no quantization, no LoRA, largest architecture),
  // without gradient: the distillation teacher, sharing the supernet's weights.
  at::Tensor teacher_hidden(const at::Tensor& ids) const;
  // The frozen LM head [V, H] (the embedding when tied).
  const at::Tensor& lm_head() const;

  // The sub-network of `arch` as the plain runtime runs it: weights sliced from the supernet's,
  // quantized in each layer's format on the supernet's grid (so that the numbers are the ones the
  // supernet's fake quantization used), LoRA merged into the float weight first.
  model::LlamaModel extract(const Arch& arch, model::RuntimeOptions runtime) const;
  // The same sub-network as a checkpoint (CPU tensors, packed formats, config with its per-layer
  // specs): what `save_hf_directory` exports.
  model::Checkpoint extract_checkpoint(const Arch& arch) const;

  const SearchSpace& space() const;
  const model::LlamaConfig& config() const;
  const std::vector<int64_t>& block_rank() const;
  Mixing mixing() const;
  void set_mixing(Mixing m);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A process group for data-parallel search: the training loop averages gradients through it.
// World size 1 here; a NCCL group plugs in without touching the loop.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In-place mean over ranks.
  virtual void all_reduce_mean(std::vector<at::Tensor>& tensors) = 0;
};
class LocalProcessGroup final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_mean(std::vector<at::Tensor>&) override {}
};

}  // namespace jointnas::search
