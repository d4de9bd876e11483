// `jointnas eval ppl`: perplexity of a text file under an explicit protocol, optionally against a
// teacher (pipeline/ppl_stage.h); `jointnas eval tasks`: zero-shot tasks with lm-eval semantics
// (pipeline/tasks_stage.h).
#include <fmt/format.h>

#include "cli.h"
#include "jointnas/pipeline/ppl_stage.h"
#include "jointnas/pipeline/tasks_stage.h"

namespace jointnas::cli {
namespace {

void print_ppl(const Json& j) {
  const Json& p = j["protocol"];
  std::cout << fmt::format("nll {:.5f} | ppl {:.3f} | {} predictions in {} windows of {} ({}) | {}", j["nll"].get<double>(),
                           j["ppl"].get<double>(), j["tokens"].get<int64_t>(), j["windows"].get<int64_t>(),
                           p["window"].get<int64_t>(), p["name"].get<std::string>(), j["text"].get<std::string>());
  if (j.contains("runtime")) std::cout << " | " << j["runtime"].get<std::string>();
  if (j.contains("teacher")) {
    std::cout << fmt::format(" | KL(teacher) {:.5f} | top-1 agreement {:.4f}", j["teacher"]["kl"].get<double>(),
                             j["teacher"]["top1_agreement"].get<double>());
  }
  std::cout << "\n";
}

std::string fmt_value(const Json& j, const std::string& key) {
  return j.contains(key) && j[key].is_number() ? fmt::format("{:.4f}", j[key].get<double>()) : "N/A";
}

// lm-eval's table: one row per task and metric.
void print_tasks(const Json& out) {
  std::cout << "| task | n | shots | metric | value | ± | items/s |\n|---|---:|---:|---|---:|---:|---:|\n";
  for (const Json& j : out["results"]) {
    for (const auto& m : j["metrics"]) {
      const std::string name = m.get<std::string>();
      std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {:.1f} |\n", j["task"].get<std::string>(),
                               j["n"].get<int64_t>(), j["num_fewshot"].get<int64_t>(), name, fmt_value(j, name),
                               fmt_value(j, name + "_stderr"), j["items_per_s"].get<double>());
    }
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto* ev = app.add_subcommand("eval", "Evaluate a model");
  ev->require_subcommand(1);
  auto positional = std::make_shared<std::string>();  // `eval ppl --runtime llama.cpp FILE.gguf`
  CLI::App* ppl = add_command<pipeline::PplOptions>(
      *ev, "ppl", "Perplexity of a text file (protocol in docs/eval.md; of a GGUF file through llama.cpp too)",
      [positional](const pipeline::PplOptions& given, const std::string& format) {
        pipeline::PplOptions o = given;
        take_positional_model(o.run.model, *positional, "eval ppl");
        const Json j = pipeline::run_ppl(o);
        emit(format, j, [&] { print_ppl(j); });
      });
  ppl->add_option("model_file", *positional, "Model path (same as --model), e.g. a GGUF file for the llama.cpp runtime");
  add_command<pipeline::TasksOptions>(*ev, "tasks", "lm-eval task files (multiple choice, log-likelihood, rolling perplexity) on local data (docs/eval.md)",
                                      [](const pipeline::TasksOptions& o, const std::string& format) {
                                        const Json j = pipeline::run_tasks(o);
                                        emit(format, j, [&] { print_tasks(j); });
                                      });
}

}  // namespace jointnas::cli
