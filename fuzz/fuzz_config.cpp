// Fuzz target: an HF config.json -> LlamaConfig (from_json, validate), then what every loader
// does next: the per-layer specs and the config written back (to_json), which must parse again
// to the same config.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/model/config.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const model::LlamaConfig c = model::LlamaConfig::from_json(parse_json(text, "config.json"), "config.json");
    const auto specs = model::dense_layer_specs(c);
    if (static_cast<int64_t>(specs.size()) != c.num_hidden_layers) fuzz::fail("layer specs != num_hidden_layers");
    const Json written = c.to_json();
    model::LlamaConfig again;
    try {
      again = model::LlamaConfig::from_json(written, "config.json (written)");
    } catch (const Error& e) {
      fuzz::fail(std::string("the written config.json does not load: ") + e.what());
    }
    if (again.to_json() != written) {
      fuzz::fail("config.json round trip changed it:\n" + written.dump() + "\n" + again.to_json().dump());
    }
  });
  return 0;
}
