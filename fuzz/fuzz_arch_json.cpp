// Fuzz target: arch.json, the search's result that finetune reads back (arch_from_json) against
// the stories260K search space (configs/spaces/stories260k.yaml), then used as finetune uses it:
// the restricted space and the deployable specs.
#include <cstdint>
#include <string>

#include "fuzz_models.h"
#include "fuzz_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/search/dnas.h"
#include "jointnas/search/space.h"

using namespace jointnas;

namespace {

// configs/spaces/stories260k.yaml at the time of writing.
constexpr const char* kSpaceYaml = R"(search_space:
  hidden: [32, 48, 64]
  depth: {min: 2}
  multiple_of: 4
  layers:
    heads: [2, 4]
    head_dim: [4, 8]
    intermediate: [44, 88, 172]
  formats: [bf16, w8a16]
)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const model::LlamaConfig& config = fuzz::stories260k();
  static const search::SearchSpace space = search::SearchSpace::from_yaml(kSpaceYaml, config, "stories260k.yaml", "cpu");
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const Json j = parse_json(text, "arch.json");
    const search::Arch a = search::arch_from_json(j, space, "arch.json");
    (void)a.to_json(space);
    const search::SearchSpace one = search::restrict_to(space, a);
    const auto [cfg, specs] = search::arch_specs(config, space, a, {});
    if (static_cast<int64_t>(specs.size()) != config.num_hidden_layers) fuzz::fail("arch_specs: wrong layer count");
    (void)search::arch_specs(config, one, search::first_arch(one), {});
  });
  return 0;
}
