// `jointnas convert`: llama2.c (or HF) checkpoint -> HF directory.
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"

namespace jointnas::cli {
namespace {

struct ConvertFlags {
  std::string model, out, dtype = "float32", format = "text";
};

void run(const ConvertFlags& f) {
  model::Checkpoint ck = model::load_checkpoint(f.model);
  // Tensors of llama2.c files are views of the mapping; save_hf_directory converts and writes.
  model::save_hf_directory(ck, f.out, f.dtype);
  const std::string tok_copied = copy_tokenizer(ck, f.model, f.out);
  Json j{{"out", f.out}, {"from", ck.format}, {"tensors", ck.tensors.size()}, {"dtype", f.dtype},
         {"tokenizer", tok_copied}};
  emit(f.format, j, [&] {
    std::cout << fmt::format("wrote {} ({} tensors, {}) from {} checkpoint {}\n", f.out,
                             ck.tensors.size(), f.dtype, ck.format, f.model);
  });
}

}  // namespace

void register_convert(CLI::App& app) {
  auto f = std::make_shared<ConvertFlags>();
  auto* sub = app.add_subcommand("convert", "Write a checkpoint (llama2.c .bin or HF) as an HF directory");
  sub->add_option("-m,--model", f->model, "llama2.c .bin file or HF directory")->required();
  sub->add_option("-o,--out", f->out, "Output HF directory")->required();
  sub->add_option("--dtype", f->dtype, "float32 | bfloat16 | float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}))
      ->capture_default_str();
  add_format_flag(sub, f->format);
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
