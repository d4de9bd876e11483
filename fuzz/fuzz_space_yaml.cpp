// Fuzz target: the search-space YAML (configs/spaces/*.yaml; SearchSpace::from_yaml), checked
// against each shipped model's shapes, then used as the search uses it: its size, the largest
// and smallest architectures, their deployable specs and the restricted one-architecture space.
#include <cstdint>
#include <string>

#include "fuzz_models.h"
#include "fuzz_util.h"
#include "jointnas/search/space.h"

using namespace jointnas;

namespace {

void check_specs(const model::LlamaConfig& c, const search::SearchSpace& s, const search::Arch& a) {
  const auto [cfg, specs] = search::arch_specs(c, s, a, {});
  if (static_cast<int64_t>(specs.size()) != c.num_hidden_layers) fuzz::fail("arch_specs: wrong layer count");
  if (cfg.hidden_size <= 0 || cfg.hidden_size > c.hidden_size) fuzz::fail("arch_specs: hidden size out of range");
  for (const auto& l : specs) {
    if (l.head_dim <= 0 || l.head_dim > c.head_dim || l.head_dim % 2 != 0 || l.num_key_value_heads <= 0 ||
        l.num_key_value_heads > c.num_key_value_heads || l.intermediate_size <= 0 ||
        l.intermediate_size > c.intermediate_size) {
      fuzz::fail("arch_specs: a layer outside the model's shapes: " + l.to_json().dump());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const model::LlamaConfig* c : {&fuzz::stories260k(), &fuzz::ref17m(), &fuzz::llama31_8b()}) {
    fuzz::expect_accept_or_reject([&] {
      const search::SearchSpace s = search::SearchSpace::from_yaml(text, *c, "space.yaml", "cpu");
      (void)s.to_json();
      (void)s.log10_num_architectures();
      const search::Arch big = search::largest_arch(s), small = search::smallest_arch(s, *c);
      check_specs(*c, s, big);
      check_specs(*c, s, small);
      (void)big.to_json(s);
      const search::SearchSpace one = search::restrict_to(s, small);
      check_specs(*c, one, search::first_arch(one));
    });
  }
  return 0;
}
