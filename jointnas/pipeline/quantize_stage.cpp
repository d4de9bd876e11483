// `jointnas quantize`; see quantize_stage.h.
#include "jointnas/pipeline/quantize_stage.h"

#include <chrono>
#include <filesystem>

#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/paths.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/data/token_stream.h"
#include "jointnas/export/hf_directory.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/quant/format.h"

namespace jointnas::pipeline {

namespace {
// llama-quantize's preset through libllama (issue 25): GGUF in, GGUF out.
Json quantize_llamacpp(const QuantizeOptions& o) {
  JNAS_CHECK_CONFIG(!o.preset.empty(), "quantize --runtime llama.cpp needs --preset (Q4_0, Q4_K_M, Q5_K_M, Q6_K, Q8_0)");
  JNAS_CHECK_CONFIG(o.method == "rtn" && o.layer_formats.empty() && o.calib.empty(),
                    "quantize --runtime llama.cpp takes --preset only (no --method, --layer-formats or --calib)");
  check_output_separate(o.out, "--out", {{o.run.model, "--model"}});
  const int threads = o.run.threads > 0 ? static_cast<int>(o.run.threads) : 0;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t bytes = llamacpp::quantize(o.run.model, o.out, o.preset, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  JNAS_LOG_INFO("[quantize] llama.cpp {}: {} -> {} in {:.1f} s", o.preset, o.run.model.str(), o.out.str(), s);
  return Json{{"out", o.out.str()}, {"runtime", "llama.cpp"}, {"preset", o.preset},
              {"bytes_in", static_cast<int64_t>(std::filesystem::file_size(o.run.model.str()))}, {"bytes_out", bytes},
              {"seconds", s}};
}
}  // namespace

Json run_quantize(const QuantizeOptions& o) {
  if (o.runtime == "llama.cpp") return quantize_llamacpp(o);
  JNAS_CHECK_CONFIG(o.preset.empty(), "quantize --preset is llama-quantize's: give --runtime llama.cpp too");
  JNAS_CHECK_CONFIG(o.method == "rtn" || !o.calib.empty(), "--method gptq needs --calib TEXT (calibration text, e.g. wikitext2 train)");
  quant::find_format(o.precision);
  // Issue 26: `--out` equal to `--model` silently replaced the input with the quantized model.
  check_output_separate(o.out, "--out", {{o.run.model, "--model"}, {o.calib, "--calib"}, {o.layer_formats, "--layer-formats"}});
  LoadedModel lm = load_model(o.run, /*need_tokenizer=*/o.method == "gptq");
  model::LlamaModel& m = *lm.model;
  const int64_t L = m.config().num_hidden_layers;
  compress::QuantizePlan plan = compress::uniform_plan(L, o.precision);
  if (!o.layer_formats.empty()) plan = compress::plan_from_json(read_json_file(o.layer_formats), L, o.precision, o.layer_formats);
  plan.method = o.method;
  plan.gptq.damp_percent = o.damp;
  plan.gptq.act_order = o.act_order;

  at::Tensor calib;
  if (o.method == "gptq") {
    const auto stream = data::load_token_stream(o.calib, *lm.tokenizer, lm.ckpt.config, data::kCalibrationMaxTokens);
    const int64_t len = std::min(o.calib_len, m.config().max_position_embeddings);
    calib = compress::sample_windows(stream, o.calib_windows, len, static_cast<uint64_t>(o.seed));
    JNAS_LOG_INFO("[quantize] calibration: {} windows x {} tokens from {} ({} tokens)", o.calib_windows, len,
                  o.calib.str(), stream.size());
  }
  auto progress = [&](int64_t done, int64_t total) { JNAS_LOG_INFO("[quantize] block {}/{} done", done, total); };
  const compress::QuantizeReport rep = compress::quantize_model(m, plan, calib, progress);

  // Write the directory: config with the per-layer formats, packed tensors, tokenizer, report.
  model::Checkpoint out;
  out.config = m.config();
  out.config.layer_specs = m.specs();
  for (const auto& [name, t] : m.state_dict()) out.tensors[name] = t.to(at::kCPU);
  std::string src_dtype = lm.ckpt.config.torch_dtype;
  if (src_dtype != "bfloat16" && src_dtype != "float16") src_dtype = "float32";
  model::save_hf_directory(out, o.out, src_dtype);
  const std::string tok = exporting::copy_tokenizer(lm.ckpt, o.run.model, o.out);
  Json report = rep.to_json();
  report["source"] = o.run.model.str();
  report["method"] = o.method;
  report["default_format"] = o.precision;
  report["calibration"] = o.method == "gptq" ? Json{{"text", o.calib.str()},
                                                    {"windows", o.calib_windows},
                                                    {"window_tokens", calib.size(1)},
                                                    {"seed", o.seed},
                                                    {"damp_percent", o.damp},
                                                    {"act_order", o.act_order}}
                                             : Json();
  write_file_atomic((std::filesystem::path(o.out.str()) / "quantization.json").string(), report.dump(2) + "\n");
  return Json{{"out", o.out.str()}, {"tokenizer", tok}, {"report", report}};
}

}  // namespace jointnas::pipeline
