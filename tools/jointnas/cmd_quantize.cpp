// `jointnas quantize`: a model -> an HF directory whose linears are stored in registry formats
// (uniform or per layer), by round-to-nearest or GPTQ; loadable by `eval ppl` and `generate`.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/compress/quantize_model.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/quant/format.h"

namespace jointnas::cli {
namespace {
namespace fs = std::filesystem;

struct QuantizeFlags {
  RunFlags run;
  std::string format = "w8a8";
  std::string layer_formats;
  std::string method = "rtn";
  std::string calib;
  int64_t calib_windows = 128;
  int64_t calib_len = 512;
  uint64_t seed = 0;
  double damp = 0.01;
  bool act_order = false;
  std::string out;
};

void run(QuantizeFlags& f) {
  JNAS_CHECK_CONFIG(f.method == "rtn" || f.method == "gptq", "--method must be rtn or gptq");
  JNAS_CHECK_CONFIG(f.method == "rtn" || !f.calib.empty(),
                    "--method gptq needs --calib TEXT (calibration text, e.g. wikitext2 train)");
  quant::find_format(f.format);
  LoadedModel lm = load_model(f.run, /*need_tokenizer=*/f.method == "gptq");
  model::LlamaModel& m = *lm.model;
  const int64_t L = m.config().num_hidden_layers;
  compress::QuantizePlan plan = compress::uniform_plan(L, f.format);
  if (!f.layer_formats.empty()) {
    plan = compress::plan_from_json(read_json_file(f.layer_formats), L, f.format, f.layer_formats);
  }
  plan.method = f.method;
  plan.gptq.damp_percent = f.damp;
  plan.gptq.act_order = f.act_order;

  at::Tensor calib;
  if (f.method == "gptq") {
    const auto& cfg = lm.ckpt.config;
    eval::PplProtocol p;  // documents as paragraphs with BOS/EOS: the same stream as eval ppl
    const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : lm.tokenizer->bos_id();
    const int64_t eos = !cfg.eos_token_ids.empty() ? cfg.eos_token_ids[0] : lm.tokenizer->eos_id();
    auto stream = eval::build_stream(eval::split_documents(read_text_file(f.calib), p.documents),
                                     *lm.tokenizer, p, bos, eos);
    const int64_t len = std::min(f.calib_len, m.config().max_position_embeddings);
    calib = compress::sample_windows(stream, f.calib_windows, len, f.seed);
    JNAS_LOG_INFO("[quantize] calibration: {} windows x {} tokens from {} ({} tokens)",
                  f.calib_windows, len, f.calib, stream.size());
  }
  auto progress = [&](int64_t done, int64_t total) {
    JNAS_LOG_INFO("[quantize] block {}/{} done", done, total);
  };
  compress::QuantizeReport rep = compress::quantize_model(m, plan, calib, progress);

  // Write the directory: config with the per-layer formats, packed tensors, tokenizer, report.
  model::Checkpoint out;
  out.config = m.config();
  out.config.layer_specs = m.specs();
  for (const auto& [name, t] : m.state_dict()) out.tensors[name] = t.to(at::kCPU);
  std::string src_dtype = lm.ckpt.config.torch_dtype;
  if (src_dtype != "bfloat16" && src_dtype != "float16") src_dtype = "float32";
  model::save_hf_directory(out, f.out, src_dtype);
  const std::string tok = copy_tokenizer(lm.ckpt, f.run.model, f.out);
  Json report = rep.to_json();
  report["source"] = f.run.model;
  report["method"] = f.method;
  report["default_format"] = f.format;
  report["calibration"] = f.method == "gptq" ? Json{{"text", f.calib},
                                                   {"windows", f.calib_windows},
                                                   {"window_tokens", calib.size(1)},
                                                   {"seed", f.seed},
                                                   {"damp_percent", f.damp},
                                                   {"act_order", f.act_order}}
                                             : Json();
  write_file_atomic((fs::path(f.out) / "quantization.json").string(), report.dump(2) + "\n");

  std::map<std::string, int64_t> per_format;
  for (const auto& r : rep.linears) per_format[r.format + " (" + r.method + ")"] += 1;
  Json j{{"out", f.out}, {"tokenizer", tok}, {"report", report}};
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("wrote {} in {:.1f} s: weights {:.2f} MB -> {:.2f} MB ({:.2f}x)\n",
                             f.out, rep.seconds, rep.bytes_before / 1e6, rep.bytes_after / 1e6,
                             static_cast<double>(rep.bytes_before) / std::max<int64_t>(rep.bytes_after, 1));
    for (const auto& [k, n] : per_format) std::cout << fmt::format("  {:>4} linears  {}\n", n, k);
  });
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto f = std::make_shared<QuantizeFlags>();
  auto* sub = app.add_subcommand(
      "quantize", "Quantize a model's linears to registry formats (RTN or GPTQ) and write it");
  // --format names the precision format here, so the output format flag is --output.
  add_run_flags(sub, f->run, /*model_required=*/true, "--output");
  sub->add_option("--format", f->format, "Format of every linear: " + quant::format_names())
      ->capture_default_str();
  sub->add_option("--layer-formats", f->layer_formats,
                  "JSON list, one object per layer: {\"qkv\": F, \"o\": F, \"gate_up\": F, "
                  "\"down\": F}; missing keys take --format");
  sub->add_option("--method", f->method, "rtn | gptq (GPTQ for integer weight formats)")
      ->check(CLI::IsMember({"rtn", "gptq"}))
      ->capture_default_str();
  sub->add_option("--calib", f->calib, "Calibration text file (GPTQ)");
  sub->add_option("--calib-windows", f->calib_windows, "Calibration windows")->capture_default_str();
  sub->add_option("--calib-len", f->calib_len, "Tokens per calibration window")->capture_default_str();
  sub->add_option("--seed", f->seed, "Seed of the window sampler")->capture_default_str();
  sub->add_option("--damp", f->damp, "GPTQ dampening (fraction of mean diag H)")->capture_default_str();
  sub->add_flag("--act-order", f->act_order, "GPTQ: quantize columns by decreasing Hessian diagonal");
  sub->add_option("-o,--out", f->out, "Output HF directory")->required();
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
