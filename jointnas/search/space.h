// The joint search space (method.md, "Llama3Space"): a global hidden size, the depth, and per
// layer the number of KV groups (each a KV head with its query heads), the head size, the MLP
// width and one precision format per fused linear. Read from the run config's YAML; every choice
// list is sorted ascending and validated against the model, so that every architecture is a
// prefix slice of the (importance-permuted) weights and masking commutes with quantization
// (docs/search.md). Torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"

namespace jointnas::search {

// The four format decisions of a layer, one per model::LinearSlot.
inline constexpr int kNumFormatSlots = model::kNumSlots;

struct LayerChoices {
  std::vector<int64_t> kv_groups;     // kept KV groups (query heads = groups * group size)
  std::vector<int64_t> head_dims;     // even head sizes <= the model's head_dim
  std::vector<int64_t> intermediate;  // MLP widths
  std::array<std::vector<std::string>, kNumFormatSlots> formats;  // registry names per slot
};

struct SearchSpace {
  std::vector<int64_t> hidden;  // global hidden sizes
  std::vector<int64_t> depth;   // numbers of kept blocks; {num_hidden_layers} = no depth search
  std::vector<LayerChoices> layers;
  int64_t group_size = 1;       // query heads per KV head (from the model)
  int64_t multiple_of = 128;    // every width is a multiple of it (the quantization group)

  // Parses the `search_space` YAML (text of a file or a string) against the model's config;
  // throws ConfigError naming `source` and the offending key. `device` ("cpu" or "cuda") picks the
  // default formats: the registry rows with a kernel on that device; "llama.cpp" defaults to ggml's
  // formats, per slot those whose blocks fit every width the slot can take, and keeps layers outside
  // `searchable` in f16.
  static SearchSpace from_yaml(const std::string& text, const model::LlamaConfig& config,
                               const std::string& source, const std::string& device = "cuda");
  static SearchSpace from_yaml_file(const std::string& path, const model::LlamaConfig& config,
                                    const std::string& device = "cuda");
  // The space where nothing is searched: the model as it is, in bf16.
  static SearchSpace dense(const model::LlamaConfig& config);

  Json to_json() const;
  // Number of distinct architectures (a dropped block's own choices do not count), as log10 so
  // that 10^150 prints; `block_rank` is the depth order (rank 0 = kept longest), identity if empty.
  double log10_num_architectures(const std::vector<int64_t>& block_rank = {}) const;
};

// One architecture of a space: an index into every choice list. Layers dropped by the depth
// choice keep their indices (ignored).
struct Arch {
  int64_t hidden = 0;
  int64_t depth = 0;
  std::vector<int64_t> kv_groups, head_dims, intermediate;
  std::vector<std::array<int64_t, kNumFormatSlots>> formats;

  Json to_json(const SearchSpace& space) const;  // the chosen values, not indices
};

// The largest architecture in bf16, and the smallest with the format of fewest bits per weight.
Arch largest_arch(const SearchSpace& space);
Arch smallest_arch(const SearchSpace& space, const model::LlamaConfig& config);

// The space whose only architecture is `arch` (every list cut to the chosen value): a supernet
// over it computes exactly that sub-network, which is how finetuning trains it.
SearchSpace restrict_to(const SearchSpace& space, const Arch& arch);
// Index 0 everywhere: the architecture of a restricted space.
Arch first_arch(const SearchSpace& space);
// A uniformly random choice of every list (hidden, depth, then per layer), drawn in that order.
Arch random_arch(const SearchSpace& space, std::mt19937_64& rng);

// Sub-spaces for the baselines of `jointnas pareto` (docs/pareto.md):
// every format list cut to `formats` (in the space's order); ConfigError when a slot keeps none.
SearchSpace restrict_formats(const SearchSpace& space, const std::vector<std::string>& formats);
// every structural choice (hidden, depth, heads, head size, MLP width) cut to `arch`'s; the
// format lists stay whole: a precision-only space.
SearchSpace fix_structure(const SearchSpace& space, const Arch& arch);
// `arch` of `from` as indices into `to`, matched by value; ConfigError naming the first value `to`
// lacks. How an architecture searched in a sub-space is written against the whole space.
Arch map_arch(const SearchSpace& from, const Arch& arch, const SearchSpace& to);

// Whether block l is kept at `depth` blocks under `block_rank` (rank 0 = most important).
bool block_kept(const std::vector<int64_t>& block_rank, int64_t layer, int64_t depth);

// The deployable model of an architecture: global config (hidden size) and per-layer specs
// (heads, head size with its RoPE base and the original score scale, width, formats, skip).
std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> arch_specs(
    const model::LlamaConfig& base, const SearchSpace& space, const Arch& arch,
    const std::vector<int64_t>& block_rank);

// The quantization group of a linear in the supernet, such that slicing any architecture's
// prefix keeps whole groups: the format's group for qkv / gate_up (input: hidden) and down
// (input: MLP width); for o_proj (input: heads x head size) the largest allowed group that also
// divides every head size of the layer and the KV group width.
int64_t supernet_group(const model::LlamaConfig& config, const LayerChoices& layer, int slot,
                       const std::string& format);

}  // namespace jointnas::search
