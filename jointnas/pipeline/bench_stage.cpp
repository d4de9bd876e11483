// The `bench` stage; see bench_stage.h.
#include "jointnas/pipeline/bench_stage.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/kernels/launch.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/model_loading.h"
#include "jointnas/profile/timing.h"
#include "jointnas/quant/format.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/model/cuda_graph_decoder.h"
#endif

namespace jointnas::pipeline {
namespace {

// Bytes one decode step must read at least once: every weight but the embedding table (one row
// of it), and the K/V of `context` + 1 positions of every layer.
int64_t decode_bytes(const model::LlamaModel& m, int64_t context, int64_t batch) {
  const auto& c = m.config();
  const int64_t elt = static_cast<int64_t>(c10::elementSize(m.options().dtype));
  int64_t bytes = m.weight_bytes();
  if (!c.tie_word_embeddings) bytes -= c.vocab_size * c.hidden_size * elt;  // table, not the head
  bytes += batch * c.hidden_size * elt;
  for (const auto& s : m.specs()) {
    if (!s.skip) bytes += 2 * batch * s.num_key_value_heads * s.head_dim * (context + 1) * elt;
  }
  return bytes;
}

// The model to time: a checkpoint, or random weights at a config's shapes; every linear in
// --weight-format when given.
std::unique_ptr<model::LlamaModel> load(const BenchOptions& o, const model::RuntimeOptions& ro, std::string& source) {
  auto with_format = [&](std::vector<model::LayerSpec> specs) {
    if (o.weight_format.empty()) return specs;
    const char* name = quant::find_format(o.weight_format).name;
    for (auto& s : specs) {
      for (int slot = 0; slot < model::kNumSlots; ++slot) s.format_of(slot) = name;
    }
    return specs;
  };
  if (o.random_weights) {
    JNAS_CHECK_CONFIG(!o.config.empty(), "--random-weights needs --config CONFIG.json");
    const auto cfg = model::LlamaConfig::from_file(o.config);
    JNAS_LOG_INFO("[bench] generating random weights for {} on {}", o.config.str(), o.run.device);
    source = o.config.str() + " (random weights)";
    return std::make_unique<model::LlamaModel>(
        model::LlamaModel::random(cfg, ro, static_cast<uint64_t>(o.seed), with_format(model::dense_layer_specs(cfg))));
  }
  JNAS_CHECK_CONFIG(!o.run.model.empty(), "bench needs --model DIR or --config FILE --random-weights");
  const model::Checkpoint ck = model::load_checkpoint(o.run.model);
  source = o.run.model;
  return std::make_unique<model::LlamaModel>(
      model::LlamaModel::from_checkpoint(ck, ro, with_format(model::dense_layer_specs(ck.config))));
}

// An export of `jointnas finetune` carries the table's prediction for its workload: the
// measurement against it (the closed loop of method.md).
void add_prediction(const BenchOptions& o, Json& j) {
  if (o.run.model.empty() || !file_exists(o.run.model.str() + "/jointnas_export.json")) return;
  const Json ex = read_json_file(o.run.model.str() + "/jointnas_export.json");
  if (!ex.contains("predicted") || !ex["predicted"].is_object() || !ex.contains("workload") || !ex["workload"].is_object()) {
    return;
  }
  const Json& w = ex["workload"];
  for (auto& r : j["decode"]) {
    if (w.value("kind", "") == "decode" && w.value("context", int64_t{-1}) == r["context"].get<int64_t>() &&
        w.value("batch", int64_t{-1}) == o.batch) {
      const double p = ex["predicted"].value("latency_ms", 0.0);
      r["predicted_ms"] = p;
      if (p > 0) r["measured_over_predicted"] = r["ms"].get<double>() / p;
    }
  }
  j["predicted"] = Json{{"workload", w}, {"cost", ex["predicted"]}};
}

}  // namespace

Json run_bench(const BenchOptions& o) {
  if (o.no_pdl) kernels::set_programmatic_launch(false);
  const model::RuntimeOptions ro = runtime_options(o.run);
  std::string source;
  const std::unique_ptr<model::LlamaModel> m = load(o, ro, source);
  const auto& cfg = m->config();
  [[maybe_unused]] const bool cuda = ro.device.is_cuda();
  double bw = 0;
#ifdef JNAS_WITH_CUDA
  if (cuda) bw = model::cuda_copy_bandwidth(int64_t(1) << 30);
#endif
  c10::InferenceMode inference_mode;  // no autograd records, no version counters
  Json j{{"model", source},
         {"device", o.run.device},
         {"dtype", c10::toString(ro.dtype)},
         {"params", m->num_parameters()},
         {"weight_bytes", m->weight_bytes()},
         {"weight_format", o.weight_format.empty() ? "as stored" : o.weight_format},
         {"batch", o.batch},
         {"programmatic_launch", cuda && kernels::programmatic_launch()},
         {"copy_bandwidth_gb_s", bw / 1e9}};
  auto plan = [&](int64_t warmup, int64_t repeats) {
    profile::TimingPlan p = profile::model_timing_plan(static_cast<int>(warmup), static_cast<int>(repeats));
    p.warmup_ms = o.timing.min_warmup_ms;
    p.measure_ms = o.timing.min_time_ms;
    return p;
  };
  Json decode = Json::array();
  for (int64_t ctx : o.contexts) {
    JNAS_CHECK_CONFIG(ctx >= 1 && ctx < cfg.max_position_embeddings,
                      "context {} out of range: the model has {} positions (a decode step at context c needs c + 1)", ctx,
                      cfg.max_position_embeddings);
    const profile::ModelTiming mt =
        profile::measure_decode(*m, o.batch, ctx, plan(o.timing.warmup, o.timing.repeats), o.no_cuda_graph);
    const profile::TimingStats& st = mt.stats;
    const int64_t bytes = decode_bytes(*m, ctx, o.batch);
    Json row{{"context", ctx}, {"ms", st.median}, {"ms_p10", st.p10}, {"ms_p90", st.p90}, {"samples", st.samples},
             {"tok_s", o.batch * 1000.0 / st.median}, {"bytes_read", bytes}, {"cuda_graph", mt.cuda_graph}};
    if (bw > 0) {
      const double floor_ms = bytes / bw * 1000.0;
      row["floor_ms"] = floor_ms;
      row["ratio_to_floor"] = st.median / floor_ms;
    }
    decode.push_back(row);
    JNAS_LOG_INFO("[bench] decode ctx {}: {:.3f} ms (p10 {:.3f}, p90 {:.3f})", ctx, st.median, st.p10, st.p90);
  }
  j["decode"] = decode;
  Json prefill = Json::array();
  for (int64_t s : o.prefill) {
    JNAS_CHECK_CONFIG(s >= 1 && s <= cfg.max_position_embeddings, "prefill {} out of range: the model has {} positions", s,
                      cfg.max_position_embeddings);
    const profile::ModelTiming mt = profile::measure_prefill(
        *m, o.batch, s, plan(std::max<int64_t>(1, o.timing.warmup / 2), std::max<int64_t>(3, o.timing.repeats / 3)),
        o.no_cuda_graph);
    const profile::TimingStats& st = mt.stats;
    const double flops = 2.0 * static_cast<double>(m->num_parameters()) * s * o.batch;
    prefill.push_back({{"tokens", s}, {"ms", st.median}, {"ms_p10", st.p10}, {"ms_p90", st.p90}, {"samples", st.samples},
                       {"tok_s", o.batch * s * 1000.0 / st.median}, {"cuda_graph", mt.cuda_graph},
                       {"tflop_s_weights", flops / (st.median / 1000.0) / 1e12}});
    JNAS_LOG_INFO("[bench] prefill {}: {:.2f} ms", s, st.median);
  }
  j["prefill"] = prefill;
  add_prediction(o, j);
  return j;
}

}  // namespace jointnas::pipeline
