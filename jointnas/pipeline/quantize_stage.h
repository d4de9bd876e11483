// `jointnas quantize`: a model -> an HF directory whose linears are stored in registry formats
// (uniform or per layer), by round-to-nearest or GPTQ; loadable by `eval ppl` and `generate`.
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

struct QuantizeOptions {
  ModelSettings run;
  std::string precision = "w8a8";  // the format of every linear (docs/formats.md)
  opt::Path layer_formats;
  std::string method = "rtn";
  opt::Path calib, out;
  int64_t calib_windows = 128;
  int64_t calib_len = 512;
  int64_t seed = 0;
  double damp = 0.01;
  bool act_order = false;
  // "llama.cpp": --model is a GGUF file, quantized by libllama with a llama-quantize --preset.
  std::string runtime = "jointnas";
  std::string preset;
};
template <class V>
void fields(V& v, QuantizeOptions& o) {
  fields(v, o.run);
  v(opt::Key{"precision", "Format of every linear (docs/formats.md: bf16, w8a16, w4a16_g128, w8a8, fp8_e4m3, ...)"},
    o.precision);
  v(opt::Key{"layer_formats", "JSON list, one object per layer: {\"qkv\": F, \"o\": F, \"gate_up\": F, \"down\": F}; "
                              "missing keys take --precision"},
    o.layer_formats);
  v(opt::Key{"method", "rtn | gptq (GPTQ for integer weight formats)"}, o.method, opt::Choices{"rtn", "gptq"});
  v(opt::Key{"calib", "Calibration text file (GPTQ)"}, o.calib);
  v(opt::Key{"calib_windows", "Calibration windows"}, o.calib_windows, opt::in<int64_t>(1, 1 << 20));
  v(opt::Key{"calib_len", "Tokens per calibration window"}, o.calib_len, opt::in<int64_t>(2, 1 << 20));
  v(opt::Key{"seed", "Seed of the window sampler"}, o.seed, opt::at_least<int64_t>(0));
  v(opt::Key{"damp", "GPTQ dampening (fraction of mean diag H)"}, o.damp, opt::in(0.0, 1.0));
  v(opt::Key{"act_order", "GPTQ: quantize columns by decreasing Hessian diagonal"}, o.act_order);
  v(opt::Key{"runtime", "jointnas | llama.cpp: quantize a GGUF --model with llama-quantize's --preset through "
                        "libllama (docs/llamacpp.md)"},
    o.runtime, opt::Choices{"jointnas", "llama.cpp"});
  v(opt::Key{"preset", "llama-quantize preset with --runtime llama.cpp: Q4_0, Q4_K_M, Q5_K_M, Q6_K, Q8_0"}, o.preset,
    opt::Choices{"", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"});
  v(opt::Key{"out", "Output HF directory (a .gguf file with --runtime llama.cpp)", "-o,--out", nullptr, true}, o.out);
}

// Quantizes and writes; returns {out, tokenizer, report}. --runtime llama.cpp: {out, runtime,
// preset, bytes_in, bytes_out, seconds}.
Json run_quantize(const QuantizeOptions& o);

}  // namespace jointnas::pipeline
