// `jointnas inspect`, `convert` and `generate`: one model at a time (pipeline/model_tools.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/model_tools.h"

namespace jointnas::cli {
namespace {

void print_inspect(const Json& j) {
  const Json& c = j["config"];
  std::cout << fmt::format("model    {} ({})\n", j["path"].get<std::string>(), j["format"].get<std::string>());
  std::cout << fmt::format("shape    hidden {} | intermediate {} | layers {} | heads {} / kv {} | head_dim {} | vocab {} | "
                           "tied {}\n",
                           c.value("hidden_size", 0), c.value("intermediate_size", 0), c.value("num_hidden_layers", 0),
                           c.value("num_attention_heads", 0), c.value("num_key_value_heads", 0), c.value("head_dim", 0),
                           c.value("vocab_size", 0), c.value("tie_word_embeddings", false));
  std::cout << fmt::format("params   {} ({:.2f} M), {:.2f} MiB in {} tensors\n\n", j["params"].get<int64_t>(),
                           j["params"].get<double>() / 1e6, j["bytes"].get<double>() / 1048576.0, j["tensors"].get<int64_t>());
  std::cout << fmt::format("{:<22} {:>14} {:>12}\n", "module", "params", "MiB");
  for (const auto& [m, pb] : j["modules"].items()) {
    std::cout << fmt::format("{:<22} {:>14} {:>12.3f}\n", m, pb["params"].get<int64_t>(), pb["bytes"].get<double>() / 1048576.0);
  }
  if (!j.contains("search_space")) return;
  const Json& sj = j["search_space"];
  std::cout << fmt::format("\nsearch space {}: 10^{:.1f} architectures\n", sj["file"].get<std::string>(),
                           sj["log10_architectures"].get<double>());
  for (const char* name : {"smallest", "largest"}) {
    const Json& a = sj[name];
    const Json& l0 = a["layers"][0];
    std::cout << fmt::format("{:<9} hidden {} | depth {} | layer 0: kv groups {}, head_dim {}, MLP {}, formats {} | {:.2f} M params\n",
                             name, a["hidden"].get<int64_t>(), a["depth"].get<int64_t>(), l0["kv_groups"].get<int64_t>(),
                             l0["head_dim"].get<int64_t>(), l0["intermediate"].get<int64_t>(), l0["formats"].dump(),
                             a["params"].get<double>() / 1e6);
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  add_command<pipeline::InspectOptions>(app, "inspect", "Print a model's config, parameter count and bytes by module",
                                        [](const pipeline::InspectOptions& o, const std::string& format) {
                                          const Json j = pipeline::run_inspect(o);
                                          emit(format, j, [&] { print_inspect(j); });
                                        });
}

void register_convert(CLI::App& app) {
  add_command<pipeline::ConvertOptions>(
      app, "convert", "Write a checkpoint (llama2.c .bin or HF) as an HF directory",
      [](const pipeline::ConvertOptions& o, const std::string& format) {
        const Json j = pipeline::run_convert(o);
        emit(format, j, [&] {
          std::cout << fmt::format("wrote {} ({} tensors, {}) from {} checkpoint {}\n", j["out"].get<std::string>(),
                                   j["tensors"].get<int64_t>(), j["dtype"].get<std::string>(), j["from"].get<std::string>(),
                                   j["model"].get<std::string>());
        });
      });
}

void register_generate(CLI::App& app) {
  add_command<pipeline::GenerateCommandOptions>(
      app, "generate", "Generate text from a prompt (greedy by default)",
      [](const pipeline::GenerateCommandOptions& o, const std::string& format) {
        const Json j = pipeline::run_generate(o);
        emit(format, j, [&] {
          std::cout << o.prompt << j["text"].get<std::string>() << std::endl;
          std::cerr << fmt::format("[generate] {} tokens | prefill {:.1f} ms | decode {:.1f} tok/s{}\n", j["ids"].size(),
                                   j["prefill_ms"].get<double>(), j["decode_tok_s"].get<double>(),
                                   j["cuda_graph"].get<bool>() ? " (CUDA graph)" : "");
        });
      });
}

}  // namespace jointnas::cli
