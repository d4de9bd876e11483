// `jointnas export`: a model (or a run directory's found model) as a file another runtime loads:
// --to gguf, one GGUF file for llama.cpp (export/gguf.h); --to hf, a Hugging Face directory:
// plain Llama for uniform widths, else DeciLM block_configs (export/hf_export.h, docs/export.md).
#pragma once

#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct ExportOptions {
  ModelSettings run;
  std::string to = "gguf";
  std::string embedding_type = "f16";
  std::string hf_dtype = "bfloat16";
  std::string name;
  opt::Path out;
};
template <class V>
void fields(V& v, ExportOptions& o) {
  fields(v, o.run);
  v(opt::Key{"to", "Target: gguf (one file for llama.cpp) or hf (a Hugging Face directory)"}, o.to,
    opt::Choices{"gguf", "hf"});
  v(opt::Key{"embedding_type", "ggml type of token_embd / output in a GGUF file: f32, f16 or q8_0"},
    o.embedding_type, opt::Choices{"f32", "f16", "q8_0"});
  v(opt::Key{"hf_dtype",
             "dtype of the weights of an HF export (dequantized): bfloat16, float16 or float32"},
    o.hf_dtype, opt::Choices{"bfloat16", "float16", "float32"});
  v(opt::Key{"name", "general.name of the GGUF file (default: the model's directory name)"},
    o.name);
  v(opt::Key{"out", "Output file (.gguf) or directory (--to hf); not the model nor inside it",
             "-o,--out", nullptr, true},
    o.out);
}

// A run directory (RUN/model/config.json) means its found model; anything else is a model path.
std::string resolve_export_model(const std::string& path);

// Checks everything, then writes; returns {out, architecture, tensors, ... } (gguf_report_json).
// Nothing is written when a check fails (ConfigError, exit 2, naming the layer and the reason).
Json run_export(const ExportOptions& o);

}  // namespace jointnas::pipeline
