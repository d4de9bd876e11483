// inspect, convert, generate; see model_tools.h.
#include "jointnas/pipeline/model_tools.h"

#include <map>
#include <regex>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/export/hf_directory.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/search/space.h"

namespace jointnas::pipeline {
namespace {

// Logical parameters of an architecture (embedding, kept blocks, norms, head).
int64_t arch_params(const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs) {
  const int64_t h = c.hidden_size;
  int64_t n = c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2) + h;
  for (const auto& s : specs) {
    if (s.skip) continue;
    const int64_t q = s.num_attention_heads * s.head_dim, kv = s.num_key_value_heads * s.head_dim;
    n += (q + 2 * kv) * h + h * q + 3 * h * s.intermediate_size + 2 * h;
  }
  return n;
}

// "model.layers.3.mlp.up_proj.weight" -> "layers.3.mlp"; embed / norm / lm_head kept as is.
std::string module_of(const std::string& name) {
  static const std::regex layer(R"(^model\.layers\.(\d+)\.(self_attn|mlp|input_layernorm|post_attention_layernorm)\b.*)");
  std::smatch m;
  if (std::regex_match(name, m, layer)) {
    std::string part = m[2];
    if (part != "self_attn" && part != "mlp") part = "norms";
    return "layers." + std::string(m[1]) + "." + part;
  }
  if (name.rfind("model.embed_tokens", 0) == 0) return "embed_tokens";
  if (name.rfind("model.norm", 0) == 0) return "norm";
  if (name.rfind("lm_head", 0) == 0) return "lm_head";
  return "other";
}

Json space_summary(const InspectOptions& o, const model::LlamaConfig& c) {
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(o.space, c, o.device);
  const search::Arch extremes[2] = {search::smallest_arch(space, c), search::largest_arch(space)};
  Json sj{{"file", o.space.str()}, {"log10_architectures", space.log10_num_architectures()}};
  const char* names[2] = {"smallest", "largest"};
  for (int i = 0; i < 2; ++i) {
    auto [cfg, specs] = search::arch_specs(c, space, extremes[i], {});
    sj[names[i]] = extremes[i].to_json(space);
    sj[names[i]]["params"] = arch_params(cfg, specs);
  }
  return sj;
}

}  // namespace

Json run_inspect(const InspectOptions& o) {
  const model::Checkpoint ck = model::load_checkpoint(o.model);
  const auto& c = ck.config;
  std::map<std::string, std::pair<int64_t, int64_t>> by_module;  // params, bytes
  int64_t params = 0, bytes = 0;
  for (const auto& [name, t] : ck.tensors) {
    // A tied checkpoint may still carry lm_head.weight; transformers ignores it, so do we.
    if (c.tie_word_embeddings && name == "lm_head.weight") continue;
    auto& e = by_module[module_of(name)];
    e.first += t.numel();
    e.second += t.numel() * static_cast<int64_t>(t.element_size());
    params += t.numel();
    bytes += t.numel() * static_cast<int64_t>(t.element_size());
  }
  Json j{{"path", o.model.str()}, {"format", ck.format}, {"config", c.to_json()}, {"params", params}, {"bytes", bytes},
         {"tensors", ck.tensors.size()}};
  Json mods = Json::object();
  for (const auto& [m, pb] : by_module) mods[m] = {{"params", pb.first}, {"bytes", pb.second}};
  j["modules"] = mods;
  if (!o.space.empty()) j["search_space"] = space_summary(o, c);
  return j;
}

Json run_convert(const ConvertOptions& o) {
  check_output_separate(o.out, "--out", {{o.model, "--model"}});
  const model::Checkpoint ck = model::load_checkpoint(o.model);
  // Tensors of llama2.c files are views of the mapping; save_hf_directory converts and writes.
  model::save_hf_directory(ck, o.out, o.dtype);
  const std::string tok = exporting::copy_tokenizer(ck, o.model, o.out);
  return Json{{"out", o.out.str()}, {"from", ck.format}, {"tensors", ck.tensors.size()}, {"dtype", o.dtype},
              {"tokenizer", tok}, {"model", o.model.str()}};
}

Json run_generate(const GenerateCommandOptions& o) {
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/true);
  const auto& tok = *lm.tokenizer;
  const auto& cfg = lm.ckpt.config;
  const int64_t bos = data::bos_id(cfg, tok);
  std::vector<int64_t> prompt;
  // An empty prompt means BOS alone; otherwise BOS is added when the tokenizer's convention says so.
  if (o.prompt.empty() || tok.add_bos()) {
    JNAS_CHECK_CONFIG(bos >= 0, "the prompt is empty and the model has no BOS token");
    prompt.push_back(bos);
  }
  for (int32_t id : tok.encode(o.prompt)) prompt.push_back(id);
  model::GenerateOptions g = o.gen;
  g.stop_ids = cfg.eos_token_ids;
  // llama2.c models mark document boundaries with BOS and run.c stops there; so do we.
  if (lm.ckpt.format == "llama2c" && bos >= 0) g.stop_ids.push_back(bos);
  g.cuda_graph = !o.no_cuda_graph;
  const model::GenerateResult r = model::generate(*lm.model, prompt, g);
  if (r.non_finite) throw_non_finite(lm, o.run.model, "the prompt's logits are");
  const std::vector<int32_t> ids32(r.ids.begin(), r.ids.end());
  const double tok_s = r.decode_ms > 0 ? static_cast<double>(r.decode_steps) / (r.decode_ms / 1000.0) : 0.0;
  return Json{{"ids", r.ids},
              {"text", tok.decode(ids32)},
              {"prompt_ids", prompt},
              {"prefill_ms", r.prefill_ms},
              {"decode_ms", r.decode_ms},
              {"decode_tok_s", tok_s},
              {"cuda_graph", r.used_cuda_graph}};
}

}  // namespace jointnas::pipeline
