// Fuzz target: the run config of `jointnas run` / `jointnas pareto` (configs/runs/*.yaml): the
// YAML conversion and the typed read of every section (pipeline::parse_run_config), then the
// dump of the effective config. Every malformed input must be a ConfigError, nothing else.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/pipeline/run_config.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const pipeline::RunConfig rc = pipeline::parse_run_config(text, "configs/runs/fuzz.yaml");
    (void)pipeline::dump(rc).dump();
    (void)rc.train_text();
    (void)rc.target();
  });
  return 0;
}
