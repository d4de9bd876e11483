// `jointnas bench`: measured decode-step and prefill latency of a model (a checkpoint, or random
// weights at a config's exact shapes), against the memory-bandwidth floor of the decode step.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/paths.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/kernels/launch.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/profile/timing.h"
#include "jointnas/quant/format.h"
#ifdef JNAS_WITH_CUDA
#include "jointnas/model/cuda_graph_decoder.h"
#endif

namespace jointnas::cli {
namespace {

struct BenchFlags {
  RunFlags run;
  std::string config;  // config.json for random weights
  bool random_weights = false;
  std::vector<int64_t> contexts{128};
  std::vector<int64_t> prefill{};
  int64_t batch = 1;
  int repeats = 30;
  int warmup = 5;
  double warmup_ms = 200;   // time floors of the measurement (profile::TimingPlan)
  double measure_ms = 500;
  uint64_t seed = 0;
  bool no_graph = false;
  bool no_pdl = false;
  std::string weight_format;  // every linear in this format (RTN at load), else as stored
};

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

void run(BenchFlags& f) {
  if (f.no_pdl) kernels::set_programmatic_launch(false);
  model::RuntimeOptions opts = runtime_options(f.run);
  std::unique_ptr<model::LlamaModel> m;
  std::string source;
  // --weight-format: the same model with every linear in one registry format.
  auto with_format = [&](std::vector<model::LayerSpec> specs) {
    if (f.weight_format.empty()) return specs;
    const char* name = quant::find_format(f.weight_format).name;
    for (auto& s : specs) {
      for (int slot = 0; slot < model::kNumLinearSlots; ++slot) s.format_of(slot) = name;
    }
    return specs;
  };
  if (f.random_weights) {
    JNAS_CHECK_CONFIG(!f.config.empty(), "--random-weights needs --config CONFIG.json");
    auto cfg = model::LlamaConfig::from_file(f.config);
    JNAS_LOG_INFO("[bench] generating random weights for {} on {}", f.config, f.run.device);
    m = std::make_unique<model::LlamaModel>(
        model::LlamaModel::random(cfg, opts, f.seed, with_format(model::dense_layer_specs(cfg))));
    source = f.config + " (random weights)";
  } else {
    JNAS_CHECK_CONFIG(!f.run.model.empty(), "bench needs --model DIR or --config FILE --random-weights");
    const model::Checkpoint ck = model::load_checkpoint(f.run.model);
    m = std::make_unique<model::LlamaModel>(model::LlamaModel::from_checkpoint(
        ck, opts, with_format(model::dense_layer_specs(ck.config))));
    source = f.run.model;
  }
  const auto& cfg = m->config();
  [[maybe_unused]] const bool cuda = opts.device.is_cuda();
  double bw = 0;
#ifdef JNAS_WITH_CUDA
  if (cuda) bw = model::cuda_copy_bandwidth(int64_t(1) << 30);
#endif
  c10::InferenceMode inference_mode;  // no autograd records, no version counters
  Json j{{"model", source},
         {"device", f.run.device},
         {"dtype", c10::toString(opts.dtype)},
         {"params", m->num_parameters()},
         {"weight_bytes", m->weight_bytes()},
         {"weight_format", f.weight_format.empty() ? "as stored" : f.weight_format},
         {"batch", f.batch},
         {"programmatic_launch", cuda && kernels::programmatic_launch()},
         {"copy_bandwidth_gb_s", bw / 1e9}};
  Json decode = Json::array();
  auto plan = [&](int warmup, int repeats) {
    profile::TimingPlan p = profile::model_timing_plan(warmup, repeats);
    p.warmup_ms = f.warmup_ms;
    p.measure_ms = f.measure_ms;
    return p;
  };
  for (int64_t ctx : f.contexts) {
    JNAS_CHECK_CONFIG(ctx >= 1 && ctx < cfg.max_position_embeddings, "context {} out of range", ctx);
    const profile::ModelTiming mt =
        profile::measure_decode(*m, f.batch, ctx, plan(f.warmup, f.repeats), f.no_graph);
    const profile::TimingStats& st = mt.stats;
    const bool graph = mt.cuda_graph;
    const int64_t bytes = decode_bytes(*m, ctx, f.batch);
    Json row{{"context", ctx}, {"ms", st.median}, {"ms_p10", st.p10}, {"ms_p90", st.p90}, {"samples", st.samples},
             {"tok_s", f.batch * 1000.0 / st.median}, {"bytes_read", bytes}, {"cuda_graph", graph}};
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
  for (int64_t s : f.prefill) {
    JNAS_CHECK_CONFIG(s >= 1 && s <= cfg.max_position_embeddings, "prefill {} out of range", s);
    const profile::ModelTiming mt =
        profile::measure_prefill(*m, f.batch, s, plan(std::max(1, f.warmup / 2), std::max(3, f.repeats / 3)), f.no_graph);
    const profile::TimingStats& st = mt.stats;
    const double flops = 2.0 * static_cast<double>(m->num_parameters()) * s * f.batch;
    prefill.push_back({{"tokens", s}, {"ms", st.median}, {"ms_p10", st.p10}, {"ms_p90", st.p90}, {"samples", st.samples},
                       {"tok_s", f.batch * s * 1000.0 / st.median}, {"cuda_graph", mt.cuda_graph},
                       {"tflop_s_weights", flops / (st.median / 1000.0) / 1e12}});
    JNAS_LOG_INFO("[bench] prefill {}: {:.2f} ms", s, st.median);
  }
  j["prefill"] = prefill;
  // An export of `jointnas finetune` carries the table's prediction for its workload: show the
  // measurement against it (the closed loop of method.md).
  Json predicted;
  if (!f.run.model.empty() && file_exists(f.run.model + "/jointnas_export.json")) {
    const Json ex = read_json_file(f.run.model + "/jointnas_export.json");
    if (ex.contains("predicted") && ex["predicted"].is_object() && ex.contains("workload") && ex["workload"].is_object()) {
      const Json& w = ex["workload"];
      predicted = Json{{"workload", w}, {"cost", ex["predicted"]}};
      for (auto& r : j["decode"]) {
        if (w.value("kind", "") == "decode" && w.value("context", int64_t{-1}) == r["context"].get<int64_t>() &&
            w.value("batch", int64_t{-1}) == f.batch) {
          const double p = ex["predicted"].value("latency_ms", 0.0);
          r["predicted_ms"] = p;
          if (p > 0) r["measured_over_predicted"] = r["ms"].get<double>() / p;
        }
      }
      j["predicted"] = predicted;
    }
  }
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("{} | {} {} | {:.1f} M params | {:.2f} GB weights{}\n", source,
                             f.run.device, c10::toString(opts.dtype), m->num_parameters() / 1e6,
                             m->weight_bytes() / 1e9,
                             bw > 0 ? fmt::format(" | copy {:.0f} GB/s", bw / 1e9) : "");
    std::cout << fmt::format("{:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n", "context", "ms", "p90",
                             "tok/s", "floor ms", "x floor");
    for (const auto& r : decode) {
      std::cout << fmt::format("{:>10} {:>10.3f} {:>10.3f} {:>10.1f} {:>10} {:>8}\n",
                               r["context"].get<int64_t>(), r["ms"].get<double>(),
                               r["ms_p90"].get<double>(), r["tok_s"].get<double>(),
                               r.contains("floor_ms") ? fmt::format("{:.3f}", r["floor_ms"].get<double>()) : "-",
                               r.contains("ratio_to_floor") ? fmt::format("{:.2f}", r["ratio_to_floor"].get<double>()) : "-");
    }
    for (const auto& r : j["decode"]) {
      if (r.contains("predicted_ms")) {
        std::cout << fmt::format("context {}: measured {:.4f} ms, predicted by the search's table {:.4f} ms ({:+.1f}%)\n",
                                 r["context"].get<int64_t>(), r["ms"].get<double>(), r["predicted_ms"].get<double>(),
                                 100.0 * (r["measured_over_predicted"].get<double>() - 1.0));
      }
    }
    if (predicted.is_object()) {
      const Json& c = predicted["cost"];
      std::cout << fmt::format("predicted memory: weights {:.2f} MiB + KV cache {:.2f} MiB (measured weights {:.2f} MiB)\n",
                               c.value("weight_bytes", 0.0) / 1048576.0, c.value("kv_cache_bytes", 0.0) / 1048576.0,
                               m->weight_bytes() / 1048576.0);
    }
    for (const auto& r : prefill) {
      std::cout << fmt::format("prefill {:>6} tokens: {:.2f} ms ({:.0f} tok/s)\n",
                               r["tokens"].get<int64_t>(), r["ms"].get<double>(), r["tok_s"].get<double>());
    }
  });
}

}  // namespace

void register_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* sub = app.add_subcommand("bench", "Measure decode-step and prefill latency on the device");
  add_run_flags(sub, f->run, /*model_required=*/false);
  sub->add_option("--config", f->config, "config.json whose shapes to benchmark (with --random-weights)");
  sub->add_flag("--random-weights", f->random_weights, "Generate random weights on the device");
  sub->add_option("--contexts", f->contexts, "Decode contexts (tokens already in the KV cache)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--prefill", f->prefill, "Prefill lengths")->delimiter(',');
  sub->add_option("--batch", f->batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--repeats", f->repeats, "Timed repeats (median reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--warmup", f->warmup, "Untimed warm-up calls, at least")->capture_default_str();
  sub->add_option("--min-warmup-ms", f->warmup_ms, "... and untimed calls until this much wall time has passed")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600000.0));
  sub->add_option("--min-time-ms", f->measure_ms,
                  "Timed calls until --repeats are done and their times add up to this much (small models need "
                  "many repeats for a stable median)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600000.0));
  sub->add_option("--seed", f->seed, "Seed of the random weights")->capture_default_str();
  sub->add_flag("--no-cuda-graph", f->no_graph, "Time the eager decode step and prefill on CUDA");
  sub->add_flag("--no-pdl", f->no_pdl,
                "Launch our CUDA kernels without programmatic dependent launch (each waits for the "
                "previous one to finish; as JNAS_PDL=0)");
  sub->add_option("--weight-format", f->weight_format,
                  "Every linear in this format, round-to-nearest at load: " + quant::format_names());
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
