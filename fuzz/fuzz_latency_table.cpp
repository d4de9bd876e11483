// Fuzz target: a latency table (table.json written by `jointnas profile`;
// LatencyTable::from_json), written back and read again unchanged, then used by the cost model to
// predict the stories260K model under the workload its calibration names.
#include <cstdint>
#include <string>

#include "fuzz_models.h"
#include "fuzz_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/workload.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const model::LlamaConfig& config = fuzz::stories260k();
  static const std::vector<model::LayerSpec> specs = model::dense_layer_specs(config);
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const profile::LatencyTable t = profile::LatencyTable::from_json(parse_json(text, "table.json"), "table.json");
    const Json written = t.to_json();
    const profile::LatencyTable again = profile::LatencyTable::from_json(written, "table.json (written)");
    if (again.to_json() != written) fuzz::fail("latency table round trip changed it");
    profile::Workload w;
    w.context = 256;
    (void)profile::predict(config, specs, t, w);
  });
  return 0;
}
