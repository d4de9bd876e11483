// CLI plumbing; see cli.h and cli_options.h.
#include "cli.h"

#include <cmath>
#include <csignal>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

namespace jointnas::cli {

void add_format_flag(CLI::App* app, std::string& format) {
  app->add_option("--format", format, "Output format on stdout: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

void take_positional_model(opt::Path& model, const std::string& positional, const char* command) {
  if (positional.empty()) return;
  JNAS_CHECK_CONFIG(model.empty(), "{}: give the model once (MODEL or --model)", command);
  model = opt::Path{positional};
}

void emit(const std::string& format, const Json& j, const std::function<void()>& text) {
  if (format == "json") {
    std::cout << j.dump() << std::endl;
  } else {
    text();
  }
}

CLI::Validator finite_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        const std::string shown = s.size() > 40 ? s.substr(0, 37) + "..." : s;
        if (used == 0 || used != s.size()) return "not a number: " + shown;
        if (!std::isfinite(v)) return "must be a finite number, got " + shown;
        if (v < lo || v > hi) return fmt::format("must be in [{}, {}], got {}", lo, hi, shown);
        return std::string();
      },
      "NUMBER");
}

CLI::Validator deprecated(const std::string& alias, const std::string& now) {
  return CLI::Validator(
      [alias, now](std::string&) {
        JNAS_LOG_WARN("{} is deprecated: use {}", alias, now);
        return std::string();
      },
      "");
}

namespace {
std::atomic<bool> g_interrupt{false};
extern "C" void on_interrupt_signal(int sig) {
  g_interrupt.store(true);
  std::signal(sig, SIG_DFL);  // a second signal terminates at once
}
}  // namespace

const std::atomic<bool>& install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt_signal);
  std::signal(SIGTERM, on_interrupt_signal);
  return g_interrupt;
}

}  // namespace jointnas::cli
