// `jointnas quantize`: a model's linears to registry formats by RTN or GPTQ (pipeline/quantize_stage.h).
// --precision names the format; --format is the output format, as in every command. The old
// spellings still parse and say they are deprecated: `--format w8a8` (a precision where text|json
// is expected) and `--output json`.
#include <map>

#include <fmt/format.h>

#include "cli.h"
#include "jointnas/core/log.h"
#include "jointnas/pipeline/quantize_stage.h"
#include "jointnas/quant/format.h"

namespace jointnas::cli {
namespace {

void print(const Json& j) {
  if (j.contains("preset")) {
    std::cout << fmt::format("wrote {} in {:.1f} s: llama.cpp {}, {:.2f} MB -> {:.2f} MB ({:.2f}x)\n",
                             j["out"].get<std::string>(), j["seconds"].get<double>(), j["preset"].get<std::string>(),
                             j["bytes_in"].get<double>() / 1e6, j["bytes_out"].get<double>() / 1e6,
                             j["bytes_in"].get<double>() / std::max(j["bytes_out"].get<double>(), 1.0));
    return;
  }
  const Json& rep = j["report"];
  const double before = rep.value("weight_bytes_before", 0.0), after = rep.value("weight_bytes_after", 0.0);
  std::cout << fmt::format("wrote {} in {:.1f} s: weights {:.2f} MB -> {:.2f} MB ({:.2f}x)\n", j["out"].get<std::string>(),
                           rep.value("seconds", 0.0), before / 1e6, after / 1e6, before / std::max(after, 1.0));
  std::map<std::string, int64_t> per_format;
  for (const auto& r : rep["linears"]) per_format[r.value("format", "") + " (" + r.value("method", "") + ")"] += 1;
  for (const auto& [k, n] : per_format) std::cout << fmt::format("  {:>4} linears  {}\n", n, k);
}

}  // namespace

void register_quantize(CLI::App& app) {
  struct State {
    pipeline::QuantizeOptions options;
    std::string format = "text", output;
    bool dump = false;
  };
  auto s = std::make_shared<State>();
  auto* sub = app.add_subcommand("quantize", "Quantize a model's linears to registry formats (RTN or GPTQ) and write it");
  bind_options(sub, s->options, s->dump);
  sub->add_option("--format", s->format, "Output format on stdout: text or json (a precision here is the deprecated "
                                         "spelling of --precision)")
      ->capture_default_str();
  sub->add_option("--output", s->output, "")->group("")->check(CLI::IsMember({"text", "json"}));
  sub->callback([s] {
    pipeline::QuantizeOptions o = s->options;
    std::string format = s->format;
    if (format != "text" && format != "json") {
      quant::find_format(format);  // ConfigError listing the formats when it is neither
      JNAS_LOG_WARN("quantize --format {0} is deprecated: --format is the output format; use --precision {0}", format);
      o.precision = format;
      format = "text";
    }
    if (!s->output.empty()) {
      JNAS_LOG_WARN("quantize --output is deprecated: use --format {}", s->output);
      format = s->output;
    }
    if (s->dump) {
      std::cout << opt::write(o).dump(1) << std::endl;
      return;
    }
    const Json j = pipeline::run_quantize(o);
    emit(format, j, [&] { print(j); });
  });
}

}  // namespace jointnas::cli
