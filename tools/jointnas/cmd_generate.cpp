// `jointnas generate`: greedy or sampled continuation of a prompt.
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/model/generate.h"

namespace jointnas::cli {
namespace {

struct GenerateFlags {
  RunFlags run;
  std::string prompt;
  model::GenerateOptions gen;
  bool no_graph = false;
};

void run(GenerateFlags& f) {
  LoadedModel lm = load_model(f.run, /*need_tokenizer=*/true);
  const auto& tok = *lm.tokenizer;
  const auto& cfg = lm.ckpt.config;
  const int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : tok.bos_id();
  std::vector<int64_t> prompt;
  // An empty prompt means BOS alone; otherwise BOS is added when the tokenizer's convention says so.
  if (f.prompt.empty() || tok.add_bos()) {
    JNAS_CHECK_CONFIG(bos >= 0, "the prompt is empty and the model has no BOS token");
    prompt.push_back(bos);
  }
  for (int32_t id : tok.encode(f.prompt)) prompt.push_back(id);
  f.gen.stop_ids = cfg.eos_token_ids;
  // llama2.c models mark document boundaries with BOS and run.c stops there; so do we.
  if (lm.ckpt.format == "llama2c" && bos >= 0) f.gen.stop_ids.push_back(bos);
  f.gen.cuda_graph = !f.no_graph;
  model::GenerateResult r = model::generate(*lm.model, prompt, f.gen);
  std::vector<int32_t> ids32(r.ids.begin(), r.ids.end());
  const std::string text = tok.decode(ids32);
  const double tok_s = r.decode_ms > 0 ? r.decode_steps / (r.decode_ms / 1000.0) : 0.0;
  Json j{{"ids", r.ids},
         {"text", text},
         {"prompt_ids", prompt},
         {"prefill_ms", r.prefill_ms},
         {"decode_ms", r.decode_ms},
         {"decode_tok_s", tok_s},
         {"cuda_graph", r.used_cuda_graph}};
  emit(f.run.format, j, [&] {
    std::cout << f.prompt << text << std::endl;
    std::cerr << fmt::format("[generate] {} tokens | prefill {:.1f} ms | decode {:.1f} tok/s{}\n",
                             r.ids.size(), r.prefill_ms, tok_s, r.used_cuda_graph ? " (CUDA graph)" : "");
  });
}

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt (greedy by default)");
  add_run_flags(sub, f->run);
  sub->add_option("-p,--prompt", f->prompt, "Prompt text (empty: start from BOS alone)");
  sub->add_option("-n,--max-new-tokens", f->gen.max_new_tokens, "Tokens to generate")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  sub->add_option("-t,--temperature", f->gen.temperature, "0 = greedy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--top-k", f->gen.top_k, "Sample among the k most likely (0 = off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", f->gen.top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", f->gen.seed, "Sampling seed")->capture_default_str();
  sub->add_flag("--no-cuda-graph", f->no_graph, "Run the decode step eagerly on CUDA");
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
