// `jointnas finetune`: recover an arch.json's architecture by LoRA + fake-quant distillation and
// export it (pipeline/finetune_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/finetune_stage.h"

namespace jointnas::cli {

void register_finetune(CLI::App& app) {
  add_command<pipeline::FinetuneStageOptions>(
      app, "finetune", "Recover a found architecture by LoRA + fake-quant distillation and export it",
      [](const pipeline::FinetuneStageOptions& o, const std::string& format) {
        const Json r = pipeline::run_finetune_stage(o, &install_interrupt_handler());
        emit(format, r, [&] {
          std::cout << fmt::format("finetuned {} steps (KD {:.4f} -> {:.4f}); exported {}\n", r["steps"].get<int64_t>(),
                                   r["kd_first"].get<double>(), r["kd_last"].get<double>(), r["out"].get<std::string>());
        });
      });
}

}  // namespace jointnas::cli
