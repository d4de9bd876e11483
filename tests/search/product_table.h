// A latency table of product form for search tests: every key a CostSpace can ask for, with
// ms = K * N * (bytes per weight of the format) * 1e-6 for linears, heads x head size x 1e-4 for
// attention and 0.01 for fixed ops: monotone in every width and format, as a real device's roughly is.
#pragma once

#include <cstdio>
#include <string>

#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/workload.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/predict.h"

namespace jointnas::search {

inline profile::LatencyTable product_table(const model::LlamaConfig& c, const profile::CostSpace& cs,
                                           const profile::Workload& w) {
  profile::LatencyTable t;
  for (const std::string& k : profile::required_keys(c, cs, w)) {
    double ms = 0.01;
    int64_t m = 0, K = 0, N = 0;
    char fmt_name[64] = {};
    if (std::sscanf(k.c_str(), "linear/m%ld/k%ld/n%ld/%63s", &m, &K, &N, fmt_name) == 4) {
      ms = static_cast<double>(K * N) * (std::string(fmt_name) == "bf16" ? 2.0 : 1.0) * 1e-6;
    } else if (k.rfind("attention", 0) == 0) {
      int64_t b, q, ctx, h, kv, d;
      std::sscanf(k.c_str(), "attention/b%ld/q%ld/c%ld/h%ld/kv%ld/d%ld", &b, &q, &ctx, &h, &kv, &d);
      ms = static_cast<double>(h * d) * 1e-4;
    }
    t.set(k, {ms, ms, ms, 1});
  }
  return t;
}

}  // namespace jointnas::search
