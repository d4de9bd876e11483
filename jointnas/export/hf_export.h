// A found model as a Hugging Face directory that transformers / vLLM load without jointnas
// (docs/export.md): every kept block with the config's shape -> a plain LlamaForCausalLM
// directory; otherwise a DeciLM (nemotron-nas) config whose `block_configs` say, per block,
// attention {n_heads_in_group, no_op, replace_with_linear} and ffn {ffn_mult, no_op,
// replace_with_linear}, as vLLM's nemotron_nas loader reads them. Weights are written dequantized
// in `dtype`; cut heads are zero-padded (exact, as in the GGUF export); query heads cut with their
// KV groups are zero-padded back to the config's count with zero o_proj columns (exact: they
// contribute nothing). Widths block_configs cannot express are refused (ConfigError naming the
// layer): an MLP width that is not vLLM's _ffn_mult_to_intermediate_size of some ffn_mult, a KV
// head count that does not divide the query heads.
#pragma once

#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"

namespace jointnas::exporting {

struct HfExportResult {
  std::string architecture;  // "LlamaForCausalLM" or "DeciLMForCausalLM"
  Json config;               // config.json as written
};

// vLLM's _ffn_mult_to_intermediate_size: int(2 * ffn_mult * hidden / 3) rounded up to 256.
int64_t deci_intermediate_size(double ffn_mult, int64_t hidden);

// The block_configs of `m`'s layer specs (ConfigError for what they cannot express).
Json deci_block_configs(const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs);

// Writes `out` (model.safetensors, config.json, the tokenizer of `source` at `model_path`).
HfExportResult write_hf_model(const model::LlamaModel& m, const model::Checkpoint& source,
                              const std::string& model_path, const std::string& dtype,
                              const std::string& out);

}  // namespace jointnas::exporting
