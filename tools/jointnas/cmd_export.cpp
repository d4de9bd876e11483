// `jointnas export --to gguf MODEL_OR_RUN_DIR --out FILE.gguf` (pipeline/export_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/core/error.h"
#include "jointnas/pipeline/export_stage.h"

namespace jointnas::cli {

void register_export(CLI::App& app) {
  struct State {
    pipeline::ExportOptions options;
    std::string format = "text", positional;
    bool dump = false;
  };
  auto s = std::make_shared<State>();
  s->options.run.model_required = false;  // the model may come as the positional argument
  auto* sub = app.add_subcommand("export",
                                 "Write a model (or a run's found model) for another runtime: GGUF "
                                 "for llama.cpp, or a Hugging Face directory");
  bind_options(sub, s->options, s->dump);
  sub->add_option("model_or_run", s->positional, "Model path or run directory (same as --model)");
  sub->add_option("--format", s->format, "Output format on stdout: text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  sub->callback([s] {
    pipeline::ExportOptions o = s->options;
    if (!s->positional.empty()) o.run.model = opt::Path{s->positional};
    if (s->dump) {
      std::cout << opt::write(o).dump(1) << std::endl;
      return;
    }
    JNAS_CHECK_CONFIG(!o.run.model.empty(), "export: no model (give MODEL_OR_RUN_DIR or --model)");
    const Json j = pipeline::run_export(o);
    if (o.to == "hf") {
      emit(s->format, j, [&] {
        std::cout << fmt::format("wrote {} ({})\n", j["out"].get<std::string>(),
                                 j["architecture"].get<std::string>());
      });
      return;
    }
    emit(s->format, j, [&] {
      std::cout << fmt::format(
          "wrote {} ({}, {} blocks, {:.2f} MB): {} tensors, {} converted, max relative error "
          "{:.3g}\n",
          j["out"].get<std::string>(), j["architecture"].get<std::string>(),
          j["kept_layers"].size(), j["bytes"].get<double>() / 1e6, j["tensors"].size(),
          j["tensors_converted"].get<int64_t>(), j["max_rel_error"].get<double>());
    });
  });
}

}  // namespace jointnas::cli
