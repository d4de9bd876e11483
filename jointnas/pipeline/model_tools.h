// The commands that look at or rewrite one model: `inspect` (config, parameters and bytes by
// module, a search space's size and extremes), `convert` (llama2.c or HF -> HF directory) and
// `generate` (greedy or sampled continuation of a prompt).
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/model/generate.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct InspectOptions {
  opt::Path model, space;
  std::string device = "cuda";  // whose default formats the space gets
};
template <class V>
void fields(V& v, InspectOptions& o) {
  v(opt::Key{"model", "HF model directory or llama2.c .bin", "", nullptr, true}, o.model);
  v(opt::Key{"space", "Search-space YAML (docs/search.md): also print its size and extremes"}, o.space);
  v(opt::Key{"device", "Target device for the space's default formats (cpu, cuda)"}, o.device, opt::Choices{"cpu", "cuda"});
}
// {path, format, config, params, bytes, tensors, modules: {name: {params, bytes}}, search_space?}.
Json run_inspect(const InspectOptions& o);

struct ConvertOptions {
  opt::Path model, out;
  std::string dtype = "float32";
};
template <class V>
void fields(V& v, ConvertOptions& o) {
  v(opt::Key{"model", "llama2.c .bin file or HF directory", "-m,--model", nullptr, true}, o.model);
  v(opt::Key{"out", "Output HF directory", "-o,--out", nullptr, true}, o.out);
  v(opt::Key{"dtype", "float32 | bfloat16 | float16"}, o.dtype, opt::Choices{"float32", "bfloat16", "float16"});
}
// {out, from, tensors, dtype, tokenizer}.
Json run_convert(const ConvertOptions& o);

}  // namespace jointnas::pipeline

namespace jointnas::model {
template <class V>
void fields(V& v, GenerateOptions& g) {
  v(opt::Key{"max_new_tokens", "Tokens to generate", "-n,--max-new-tokens"}, g.max_new_tokens, opt::in<int64_t>(0, 1 << 24));
  v(opt::Key{"temperature", "0 = greedy", "-t,--temperature"}, g.temperature, opt::in(0.0, 100.0));
  v(opt::Key{"top_k", "Sample among the k most likely (0 = off)"}, g.top_k, opt::in<int64_t>(0, 1 << 24));
  v(opt::Key{"top_p", "Nucleus sampling mass (1 = off)"}, g.top_p, opt::in(0.0, 1.0));
  v(opt::Key{"seed", "Sampling seed"}, g.seed);
}
}  // namespace jointnas::model

namespace jointnas::pipeline {

struct GenerateCommandOptions {
  ModelSettings run;
  std::string prompt;
  model::GenerateOptions gen;
  bool no_cuda_graph = false;
};
template <class V>
void fields(V& v, GenerateCommandOptions& o) {
  fields(v, o.run);
  v(opt::Key{"prompt", "Prompt text (empty: start from BOS alone)", "-p,--prompt"}, o.prompt);
  fields(v, o.gen);
  v(opt::Key{"no_cuda_graph", "Run the decode step eagerly on CUDA"}, o.no_cuda_graph);
}
// {ids, text, prompt_ids, prefill_ms, decode_ms, decode_tok_s, cuda_graph}.
Json run_generate(const GenerateCommandOptions& o);

}  // namespace jointnas::pipeline
