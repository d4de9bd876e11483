// The workload (see workload.h): its JSON form, its name and its token shapes.
#include "jointnas/profile/workload.h"

#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::profile {

Workload Workload::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_CONFIG(j.is_object(), "{}: a workload must be an object", src);
  Workload w;
  w.kind = get_string(j, "kind", src).value_or("decode");
  JNAS_CHECK_CONFIG(w.kind == "decode" || w.kind == "prefill" || w.kind == "mix",
                    "{}: workload kind '{}' (expected decode, prefill or mix)", src, w.kind);
  w.batch = get_int(j, "batch", src).value_or(1);
  w.context = get_int(j, "context", src).value_or(512);
  w.tokens = get_int(j, "tokens", src).value_or(2048);
  w.decode_weight = get_number(j, "decode_weight", src).value_or(1.0);
  w.prefill_weight = get_number(j, "prefill_weight", src).value_or(0.0);
  JNAS_CHECK_CONFIG(w.batch >= 1 && w.context >= 0 && w.tokens >= 1,
                    "{}: workload needs batch >= 1, context >= 0, tokens >= 1", src);
  return w;
}

Json Workload::to_json() const {
  return Json{{"kind", kind}, {"batch", batch}, {"context", context}, {"tokens", tokens},
              {"decode_weight", decode_weight}, {"prefill_weight", prefill_weight}};
}

std::string Workload::name() const {
  if (kind == "decode") return fmt::format("decode_b{}_c{}", batch, context);
  if (kind == "prefill") return fmt::format("prefill_b{}_s{}", batch, tokens);
  return fmt::format("mix_b{}_c{}_s{}_{}_{}", batch, context, tokens, decode_weight, prefill_weight);
}

WorkloadShape shape_of(const Workload& w, bool prefill) {
  WorkloadShape s;
  if (prefill) {
    s.m = w.batch * w.tokens;
    s.attn_rows = w.tokens;
    s.attn_context = w.tokens;
    s.kv_len = w.tokens;
  } else {
    s.m = w.batch;
    s.attn_rows = 1;
    s.attn_context = w.context + 1;  // the cached tokens and the new one
    s.kv_len = w.context + 1;
  }
  s.scored = w.batch;  // generation scores the last position only
  return s;
}

std::vector<std::pair<bool, double>> regimes(const Workload& w) {
  if (w.kind == "decode") return {{false, 1.0}};
  if (w.kind == "prefill") return {{true, 1.0}};
  return {{false, w.decode_weight}, {true, w.prefill_weight}};
}

}  // namespace jointnas::profile
