// The `importance` stage: a model + calibration text -> the permuted model (an HF directory that
// computes the same function, every width prefix being the most important part) plus
// importance.json (rankings, scores, block influence). docs/importance.md.
#pragma once

#include <cstdint>

#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/settings.h"

namespace jointnas::pipeline {

// The run config's `importance:` section; the same flags on `jointnas importance`.
struct ImportanceSettings {
  int64_t windows = 32;
  int64_t seq_len = 256;
  int64_t batch = 8;
};
template <class V>
void fields(V& v, ImportanceSettings& s) {
  v(opt::Key{"windows", "Calibration windows"}, s.windows, opt::in<int64_t>(1, 1 << 20));
  v(opt::Key{"seq_len", "Tokens per calibration window"}, s.seq_len, opt::in<int64_t>(2, 1 << 20));
  v(opt::Key{"batch", "Windows per forward pass"}, s.batch, opt::in<int64_t>(1, 1 << 16));
}

struct ImportanceOptions {
  ModelSettings run;
  opt::Path calib, out;
  ImportanceSettings importance;
  int64_t seed = 0;
};
template <class V>
void fields(V& v, ImportanceOptions& o) {
  fields(v, o.run);
  v(opt::Key{"calib", "Calibration text file (e.g. wikitext2 train)", nullptr, nullptr, true}, o.calib);
  fields(v, o.importance);
  v(opt::Key{"seed", "Seed of the window sampler"}, o.seed, opt::at_least<int64_t>(0));
  v(opt::Key{"out", "Output HF directory (permuted model + importance.json)", "-o,--out", nullptr, true}, o.out);
}

// Writes the permuted model and importance.json; returns {out, tokenizer, importance,
// block_influence, block_rank, tokens}.
Json run_importance(const ImportanceOptions& o);

}  // namespace jointnas::pipeline
