// Writing a found model as a Hugging Face directory; see hf_directory.h.
#include "jointnas/export/hf_directory.h"

#include <filesystem>

#include <fmt/format.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/paths.h"

namespace jointnas::exporting {
namespace fs = std::filesystem;

std::string copy_tokenizer(const model::Checkpoint& ck, const std::string& model_path, const std::string& out) {
  std::string copied;
  if (ck.format == "llama2c") {
    const fs::path dir = fs::path(model_path).parent_path();
    for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
      if (file_exists((dir / name).string())) {
        copy_file_atomic((dir / name).string(), (fs::path(out) / "tokenizer.bin").string());
        copied = name;
        break;
      }
    }
    const Json tc{{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token_id", 1}, {"eos_token_id", 2}};
    write_file_atomic((fs::path(out) / "tokenizer_config.json").string(), tc.dump(2) + "\n");
    return copied;
  }
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "tokenizer.bin",
                           "generation_config.json", "special_tokens_map.json"}) {
    if (!path_exists((fs::path(model_path) / name).string())) continue;
    // A side file that is a link out of the model directory is refused, not copied verbatim.
    const std::string src = join_inside(model_path, name, model_path);
    require_regular_file(src, fmt::format("the model's {}", name));
    copy_file_atomic(src, (fs::path(out) / name).string());
    if (copied.empty()) copied = name;
  }
  return copied;
}

Json quantization_manifest(const model::LlamaConfig& config) {
  Json manifest = Json::array();
  for (size_t l = 0; l < config.layer_specs.size(); ++l) {
    const model::LayerSpec& sp = config.layer_specs[l];
    if (sp.skip) continue;
    Json e{{"layer", l}};
    for (model::LinearSlot s : model::kSlots) e[model::slot_name(s)] = sp.format_of(static_cast<int>(model::slot_index(s)));
    manifest.push_back(e);
  }
  return manifest;
}

Json export_json(const model::LlamaConfig& config, const Provenance& p) {
  return Json{{"format", "jointnas-export"},
              {"version", 1},
              {"source_model", p.source_model},
              {"arch", p.arch.value("architecture", Json::object())},
              {"predicted", p.arch.value("predicted", Json::object())},
              {"budget", p.arch.value("budget", Json::object())},
              {"workload", p.arch.value("workload", Json::object())},
              {"finetune", p.finetune},
              {"quantization", {{"method", "rtn"}, {"layers", quantization_manifest(config)}}},
              {"tokenizer", p.tokenizer}};
}

void write_hf_export(const model::Checkpoint& m, const std::string& dtype, const model::Checkpoint& source,
                     Provenance p, const std::string& out) {
  model::save_hf_directory(m, out, dtype);
  p.tokenizer = copy_tokenizer(source, p.source_model, out);
  write_file_atomic(out + "/jointnas_export.json", export_json(m.config, p).dump(1) + "\n");
}

}  // namespace jointnas::exporting
