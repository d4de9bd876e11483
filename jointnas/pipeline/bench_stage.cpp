// The `bench` stage; see bench_stage.h.
#include "jointnas/pipeline/bench_stage.h"

#include <algorithm>
#include <functional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"
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

Json run_bench_rounds(const BenchOptions& o) {
  JNAS_CHECK_CONFIG(!o.models.empty() && !o.random_weights && o.run.model.empty(),
                    "bench --models takes checkpoints only (not with --model or --random-weights)");
  if (o.no_pdl) kernels::set_programmatic_launch(false);
  const model::RuntimeOptions ro = runtime_options(o.run);
  std::vector<std::unique_ptr<model::LlamaModel>> ms;
  for (const std::string& path : o.models) {
    BenchOptions one = o;
    one.models.clear();
    one.run.model.value = path;
    std::string source;
    ms.push_back(load(one, ro, source));
  }
  c10::InferenceMode inference_mode;
  // Each model is warmed up once (the full warm-up of a single bench), then every round times it
  // for a share of the timed budget: many short windows, since this VM's slow spells last about as
  // long as one window of a single bench (a 140 ms window's median moved 2x between windows).
  const int rounds = static_cast<int>(o.rounds);
  profile::TimingPlan warm = profile::model_timing_plan(static_cast<int>(o.timing.warmup), 1);
  warm.warmup_ms = o.timing.min_warmup_ms;
  profile::TimingPlan plan = profile::model_timing_plan(1, static_cast<int>(std::max<int64_t>(3, o.timing.repeats / rounds)));
  plan.warmup_ms = 0;
  plan.measure_ms = o.timing.min_time_ms / rounds;
  const std::vector<BenchShape> shapes = bench_shapes(o, "bench --models");
  const size_t n = ms.size();
  for (size_t i = 0; i < n; ++i) {
    for (const BenchShape& sh : shapes) {
      const int64_t positions = ms[i]->config().max_position_embeddings;
      JNAS_CHECK_CONFIG(sh.n >= 1 && (sh.kind[0] == 'd' ? sh.n < positions : sh.n <= positions),
                        "{} {} out of range for {}: the model has {} positions", sh.kind, sh.n, o.models[i], positions);
    }
  }
  // One timer per (model, shape), timer index i * shapes + si; each runs its warm-up once first.
  auto time_one = [&](size_t i, const BenchShape& sh, const profile::TimingPlan& p) {
    return (sh.kind[0] == 'd' ? profile::measure_decode(*ms[i], o.batch, sh.n, p, o.no_cuda_graph)
                              : profile::measure_prefill(*ms[i], o.batch, sh.n, p, o.no_cuda_graph))
        .stats.median;
  };
  std::vector<std::function<double()>> timers;
  for (size_t i = 0; i < n; ++i) {
    for (const BenchShape& sh : shapes) {
      time_one(i, sh, warm);
      timers.push_back([&, i, sh] { return time_one(i, sh, plan); });
    }
  }
  // Other jointnas processes on this machine pause their training and evaluation loops meanwhile.
  const FileLock quiet(timing_lock_path());
  const std::vector<std::vector<double>> flat = profile::interleaved_rounds(
      timers, rounds, [&](int r) { JNAS_LOG_INFO("[bench] round {}/{} of {} models", r + 1, rounds, n); });
  auto at = [&](size_t si, size_t i) -> const std::vector<double>& { return flat[i * shapes.size() + si]; };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Json models = Json::array();
  for (size_t i = 0; i < n; ++i) {
    Json m{{"model", o.models[i]}, {"params", ms[i]->num_parameters()}, {"weight_bytes", ms[i]->weight_bytes()},
           {"decode", Json::array()}, {"prefill", Json::array()}};
    for (size_t si = 0; si < shapes.size(); ++si) {
      std::vector<double> ratio;
      for (int r = 0; r < rounds; ++r) ratio.push_back(at(si, i)[r] / at(si, 0)[r]);
      const bool decode = shapes[si].kind[0] == 'd';
      const double best = *std::min_element(at(si, i).begin(), at(si, i).end());
      const double first_best = *std::min_element(at(si, 0).begin(), at(si, 0).end());
      m[shapes[si].kind].push_back(Json{{decode ? "context" : "tokens", shapes[si].n},
                                        {"ms", median(at(si, i))},
                                        {"ms_best", best},
                                        {"rounds_ms", at(si, i)},
                                        {"ratio_to_first", median(ratio)},
                                        {"best_ratio_to_first", best / first_best}});
    }
    JNAS_LOG_INFO("[bench] {}: best round {:.4f} ms ({:.3f}x the first's), median {:.4f} ms", o.models[i],
                  m[shapes[0].kind][0]["ms_best"].get<double>(), m[shapes[0].kind][0]["best_ratio_to_first"].get<double>(),
                  median(at(0, i)));
    models.push_back(m);
  }
  return Json{{"device", o.run.device}, {"dtype", c10::toString(ro.dtype)}, {"batch", o.batch},
              {"rounds", rounds}, {"models", models}};
}

std::vector<BenchShape> bench_shapes(const BenchOptions& o, const char* who) {
  std::vector<BenchShape> shapes;
  for (int64_t c : o.contexts) shapes.push_back({"decode", c});
  for (int64_t t : o.prefill) shapes.push_back({"prefill", t});
  JNAS_CHECK_CONFIG(!shapes.empty(), "{}: give --contexts or --prefill", who);
  return shapes;
}

Json run_bench(const BenchOptions& o) {
  if (o.runtime == "llama.cpp") return run_bench_llamacpp(o);
  if (!o.models.empty()) return run_bench_rounds(o);
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
