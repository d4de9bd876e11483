// jointnas: one binary, one subcommand per stage. Only main catches errors: one `error:` line,
// a `hint:` line when a remedy is known, exit 2 for usage/config, 3 for I/O and model files.
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "cli.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

int main(int argc, char** argv) {
  CLI::App app{"jointnas: joint architecture + precision search for Llama models under measured "
               "latency and memory budgets"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging on stderr");
  app.set_version_flag("--version", "jointnas 0.1.0");
  app.parse_complete_callback([&] { jointnas::init_logging(verbose); });
  jointnas::cli::register_inspect(app);
  jointnas::cli::register_generate(app);
  jointnas::cli::register_eval(app);
  jointnas::cli::register_convert(app);
  jointnas::cli::register_bench(app);
  jointnas::cli::register_quantize(app);
  jointnas::cli::register_export(app);
  jointnas::cli::register_profile(app);
  jointnas::cli::register_importance(app);
  jointnas::cli::register_search(app);
  jointnas::cli::register_finetune(app);
  jointnas::cli::register_run(app);
  jointnas::cli::register_arch(app);
  jointnas::cli::register_pareto(app);
  jointnas::cli::register_scores(app);
  // An unknown command gets its own message (CLI11 would say "A subcommand is required").
  std::string names;
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
    known = known || (argc > 1 && sub->get_name() == argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !known) {
    const std::string cmd = std::string(argv[1]).substr(0, 60);
    std::cerr << "error: unknown command '" << cmd << "'\nhint: the commands are " << names
              << "; 'jointnas <command> --help' describes one\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\nhint: run 'jointnas --help' or 'jointnas <command> --help'\n";
    return 2;
  } catch (const jointnas::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "hint: " << e.hint() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    // LibTorch checks: keep the first line (the message), not the C++ backtrace.
    std::string msg = e.what_without_backtrace();
    std::cerr << "error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
