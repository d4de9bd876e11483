// CLI plumbing shared by the subcommands: the output flag, printing a result as JSON or text, the
// interrupt handler, and add_command, which binds a command's options struct (declared once in the
// library, core/options.h) to flags with --format and --dump-config.
#pragma once

#include <atomic>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli_options.h"
#include "jointnas/core/json_util.h"

namespace jointnas::cli {

// --format text|json: what a command prints on stdout (logs and progress go to stderr).
void add_format_flag(CLI::App* app, std::string& format);
// Prints `j` as JSON (format == "json") or calls `text()` for the human form.
void emit(const std::string& format, const Json& j, const std::function<void()>& text);

// SIGINT / SIGTERM set the returned flag (long stages checkpoint and stop with exit 130); a
// second signal gets the default action (immediate termination).
const std::atomic<bool>& install_interrupt_handler();

// A subcommand over options `O`: every field a flag, plus --format and --dump-config. `run(options,
// format)` is called after parsing unless --dump-config was given, which prints the effective
// options as JSON instead (or what `dump(options)` returns: `run` prints its run config).
template <class O>
CLI::App* add_command(CLI::App& parent, const char* name, const char* help,
                      std::function<void(const O&, const std::string&)> run,
                      std::function<Json(const O&)> dump = nullptr) {
  struct State {
    O options;
    std::string format = "text";
    bool dump = false;
  };
  auto s = std::make_shared<State>();
  CLI::App* sub = parent.add_subcommand(name, help);
  bind_options(sub, s->options, s->dump);
  add_format_flag(sub, s->format);
  sub->callback([s, run, dump] {
    if (s->dump) {
      std::cout << (dump ? dump(s->options) : opt::write(s->options)).dump(1) << std::endl;
      return;
    }
    run(s->options, s->format);
  });
  return sub;
}

// `COMMAND MODEL_FILE`: the positional model argument (when given) into --model; ConfigError
// when both are given.
void take_positional_model(opt::Path& model, const std::string& positional, const char* command);

void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_convert(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_export(CLI::App& app);
void register_profile(CLI::App& app);
void register_importance(CLI::App& app);
void register_search(CLI::App& app);
void register_finetune(CLI::App& app);
void register_run(CLI::App& app);
void register_arch(CLI::App& app);
void register_pareto(CLI::App& app);
void register_scores(CLI::App& app);

}  // namespace jointnas::cli
