// The keys a cost space needs (see required_keys.h), by the same decomposition as predict().
#include "jointnas/profile/required_keys.h"

#include <set>

#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/linear_cost.h"

namespace jointnas::profile {

std::vector<std::string> required_keys(const model::LlamaConfig& c, const CostSpace& sp,
                                       const Workload& w, bool cpu_table) {
  auto linear = [&](int64_t m, int64_t k, int64_t n, const std::string& f, bool from_producer) {
    return LatencyTable::linear_key(m, k, n, f, from_producer && fed_quantized(f, cpu_table));
  };
  std::set<std::string> keys;
  for (auto [prefill, weight] : regimes(w)) {
    const WorkloadShape s = shape_of(w, prefill);
    for (int64_t H : sp.hidden) {
      keys.insert(LatencyTable::head_key(s.scored, H, c.vocab_size));
      for (const LayerSpace& L : sp.layers) {
        for (const AttnChoice& A : L.attention) {
          for (const auto& f : L.formats_qkv) {
            keys.insert(linear(s.m, H, (A.heads + 2 * A.kv_heads) * A.head_dim, f, true));
          }
          for (const auto& f : L.formats_o) keys.insert(linear(s.m, A.heads * A.head_dim, H, f, true));
        }
        for (int64_t I : L.intermediate) {
          for (const auto& f : L.formats_gate_up) keys.insert(linear(s.m, H, 2 * I, f, true));
          for (const auto& f : L.formats_down) keys.insert(linear(s.m, I, H, f, true));
          keys.insert(LatencyTable::block_fixed_key(s.m, H, I));
        }
      }
    }
    for (const LayerSpace& L : sp.layers) {
      for (const AttnChoice& A : L.attention) {
        keys.insert(LatencyTable::attention_key(w.batch, s.attn_rows, s.attn_context, A.heads, A.kv_heads, A.head_dim));
      }
    }
  }
  return {keys.begin(), keys.end()};
}

}  // namespace jointnas::profile
