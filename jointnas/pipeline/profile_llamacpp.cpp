// The `profile` stage for runtime llama.cpp; see profile_stage.h and docs/llamacpp.md ("The
// latency table"). Entries: llama.cpp's CPU kernels one operation at a time (llamacpp/op_timer.h)
// under the table's usual keys, so that predict() and the search price llama.cpp architectures
// as they price the others. Calibration and validation: random architectures of the space with
// random weights, exported to GGUF and timed through libllama against the dense f16 model in the
// same interleaved rounds (bench --runtime llama.cpp), each measurement taken as its ratio to the
// dense model times the dense model's median, so that a slow spell of the machine cancels.
#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/machine.h"
#include "jointnas/core/paths.h"
#include "jointnas/export/gguf.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/llamacpp/op_timer.h"
#include "jointnas/model/llama.h"
#include "jointnas/pipeline/bench_stage.h"
#include "jointnas/pipeline/profile_stage.h"
#include "jointnas/profile/calibrate.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/git_sha.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/profiler.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/table_key.h"
#include "jointnas/quant/format.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kKvBytes = 2;  // libllama's KV cache is f16
constexpr int kPasses = 5;

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(std::min(line.size(), c + 2));
    }
  }
  return "unknown";
}

// The last-level cache of CPU 0 (sysfs), else 32 MiB.
int64_t llc_bytes() {
  for (const char* level : {"index3", "index2"}) {
    std::ifstream in(std::string("/sys/devices/system/cpu/cpu0/cache/") + level + "/size");
    std::string v;
    if (!(in >> v) || v.empty()) continue;
    const char unit = v.back();
    const int64_t n = std::atoll(v.c_str());
    if (n > 0) return unit == 'K' ? n << 10 : unit == 'M' ? n << 20 : n;
  }
  return int64_t(32) << 20;
}

// The weight bytes of the dense model with every linear in the space's smallest format and an
// f16 embedding: about what the architectures a budget search ends at read per decode step.
int64_t small_model_bytes(const model::LlamaConfig& cfg, const profile::CostSpace& space) {
  double best = 16;
  for (const std::string& f : space.layers.empty() ? std::vector<std::string>{"f16"} : space.layers[0].formats_qkv) {
    best = std::min(best, quant::find_format(f).bits_per_weight(cfg.hidden_size));
  }
  // Every linear at the rate of a hidden-wide row (the space's widths are whole blocks there; the
  // model's own widths need not be).
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, hd = cfg.head_dim;
  const int64_t weights = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * hd * H +
                          H * cfg.num_attention_heads * hd + 3 * I * H;
  const auto per_layer = static_cast<int64_t>(best / 8.0 * static_cast<double>(weights));
  return per_layer * cfg.num_hidden_layers + cfg.vocab_size * H * 2;
}

// How many bytes of weights each operation's graph rotates through. In a decode step a weight is
// read again after every other weight of the model, so whether it comes from the last-level
// cache depends on the whole model's size: the working set of the architectures a search ends at
// (small_model_bytes), at least the cache and at most twice it. At exactly the cache a weight
// sits at the knee between cache and memory, where the architectures a search compares on a
// model of ref-17m's size lie (13-30 MB against this VM's 32 MB L3); an 8B model times from
// memory. On ref-17m a rotation of 13.4 MiB (the working set alone) under-predicted the larger
// architectures by 10 % on average; one L3 removed the bias (docs/benchmarks.md).
int64_t rotate_bytes(const model::LlamaConfig& cfg, const profile::CostSpace& space) {
  const int64_t llc = llc_bytes();
  return std::clamp(small_model_bytes(cfg, space), llc, 2 * llc);
}

// What a llama.cpp table is reused under: the pinned version, threads, CPU, rotation and this code.
Json llamacpp_meta(int threads, int64_t rotate) {
  return Json{{"device", "cpu"},      {"runtime", "llama.cpp"},  {"llama_cpp", llamacpp::version()},
              {"threads", threads},   {"cpu", cpu_model_name()}, {"cores", machine_cores()},
              {"rotate_bytes", rotate}, {"git_sha", profile::git_sha()}};
}

// Every linear of the config's dense layers in f16: the reference that budgets and the
// calibration's ratios are taken against (the f16 GGUF users start from).
std::vector<model::LayerSpec> dense_f16(const model::LlamaConfig& cfg) {
  std::vector<model::LayerSpec> s = model::dense_layer_specs(cfg);
  for (model::LayerSpec& l : s) {
    for (int k = 0; k < model::kNumSlots; ++k) l.format_of(k) = "f16";
  }
  return s;
}

void check_ggml_space(const profile::CostSpace& space, const std::string& source) {
  for (size_t l = 0; l < space.layers.size(); ++l) {
    const profile::LayerSpace& L = space.layers[l];
    for (const auto* list : {&L.formats_qkv, &L.formats_o, &L.formats_gate_up, &L.formats_down}) {
      for (const std::string& f : *list) {
        if (quant::find_format(f).weight == quant::WeightType::kGgml && llamacpp::OpTimer::is_ggml_type(f)) continue;
        throw ConfigError(fmt::format("{}: layer {} offers format '{}', which llama.cpp does not run", source, l, f),
                          "list ggml formats in the space (formats: [f16, q8_0, q4_0, q4_k, q5_k, q6_k]; "
                          "docs/llamacpp.md)");
      }
    }
  }
}

llamacpp::OpTime measure_entry(llamacpp::OpTimer& t, const std::string& key) {
  const profile::ParsedKey p = profile::parse_key(key);
  llamacpp::OpTime r;
  if (p.op == "linear") {
    JNAS_CHECK_CONFIG(!p.quantized_input, "latency-table key '{}': llama.cpp quantizes activations inside the linear",
                      key);
    r = t.linear(profile::need(p, 'm', key), profile::need(p, 'k', key), profile::need(p, 'n', key), p.format);
  } else if (p.op == "attention") {
    JNAS_CHECK_CONFIG(profile::need(p, 'b', key) == 1, "latency-table key '{}': llama.cpp is timed at batch 1", key);
    const int64_t rows = profile::need(p, 'q', key), c = profile::need(p, 'c', key);
    // Decode attends a cache of c positions with 1 new row; prefill (rows = c) an empty one.
    r = t.attention(rows, rows == c && rows > 1 ? 0 : c, profile::need(p, 'h', key), profile::need(p, 'K', key),
                    profile::need(p, 'd', key));
  } else if (p.op == "block_fixed") {
    r = t.block_fixed(profile::need(p, 'm', key), profile::need(p, 'h', key), profile::need(p, 'i', key));
  } else if (p.op == "head") {
    r = t.head(profile::need(p, 'm', key), profile::need(p, 'h', key), profile::need(p, 'v', key));
  } else {
    throw ConfigError(fmt::format("latency-table key '{}': no llama.cpp measurement for '{}'", key, p.op));
  }
  return r;
}

// A vocabulary of the config's size for GGUF files with random weights (timing only: libllama
// needs one to load; its tokens are never read): the 256 byte tokens and placeholders.
exporting::GgufVocab timing_vocab(int64_t n) {
  exporting::GgufVocab v;
  v.model = "llama";
  v.source = "(timing vocabulary)";
  for (int64_t i = 0; i < n; ++i) {
    const bool byte = i >= 3 && i < 3 + 256;
    v.tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : byte ? fmt::format("<0x{:02X}>", i - 3)
                                                                                    : fmt::format("<t{}>", i));
    v.scores.push_back(0.0f);
    v.token_types.push_back(i == 0 ? 2 : i < 3 ? 3 : byte ? 6 : 1);
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

struct GgufSample {
  std::vector<profile::MeasuredArch> archs;
  std::vector<double> predicted_ratio, measured_ratio, ratio_min, ratio_max;
  double dense_ms = 0;
};

// `n` random architectures of `space` (as profile::measure_random_architectures samples them)
// exported to GGUF in `dir` with random weights, timed with the dense f16 model in the same
// interleaved rounds. measured_ms = (median over rounds of the ratio to the dense model) x the
// dense model's median.
GgufSample measure_gguf(const model::LlamaConfig& cfg, const profile::CostSpace& space,
                        const profile::LatencyTable& table, const profile::Workload& w, int n, uint64_t seed,
                        bool spread_depth, const ProfileStageOptions& o, int threads, const std::string& dir,
                        const std::string& what) {
  JNAS_CHECK_CONFIG(n >= 1, "{}: needs at least 1 architecture, got {}", what, n);
  fs::create_directories(dir);
  const exporting::GgufVocab vocab = timing_vocab(cfg.vocab_size);
  exporting::GgufExportOptions eo;
  eo.name = "jointnas-timing";
  std::mt19937_64 rng(seed);
  GgufSample s;
  std::vector<std::string> files;
  auto write = [&](const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs, uint64_t wseed,
                   const std::string& name) {
    const model::LlamaModel m = model::LlamaModel::random(c, {}, wseed, specs);
    const std::string path = dir + "/" + name + ".gguf";
    exporting::write_gguf(m, vocab, eo, path);
    files.push_back(path);
  };
  const std::vector<model::LayerSpec> dense = dense_f16(cfg);
  write(cfg, dense, seed, "dense-f16");
  for (int i = 0; i < n; ++i) {
    const double drop = spread_depth ? (n > 1 ? 0.6 * i / (n - 1) : 0.2) : 0.2;
    const profile::Selection sel = profile::random_selection(space, rng, drop);
    auto [c, specs] = profile::select(cfg, space, sel);
    int64_t kept = 0;
    for (model::LayerSpec& sp : specs) {
      kept += sp.skip ? 0 : 1;
      // A cut head keeps the model's score scale, as the search's architectures do (GGUF holds one).
      if (sp.head_dim != cfg.head_dim && sp.attention_scale == 0.0) {
        sp.attention_scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
      }
    }
    JNAS_CHECK_CONFIG(kept > 0, "{}: a sampled architecture drops every block", what);
    const double pred = profile::predict(c, specs, table, w, kKvBytes).latency_ms;
    s.archs.push_back(profile::MeasuredArch{specs, c.hidden_size, kept, pred, 0.0, 0, -1});
    write(c, specs, seed + 1 + static_cast<uint64_t>(i), fmt::format("arch-{:03d}", i));
    JNAS_LOG_INFO("[{}] {}/{} exported: {} blocks, predicted {:.4f} ms", what, i + 1, n, kept, pred);
  }
  BenchOptions b;
  b.runtime = "llama.cpp";
  b.run.threads = threads;
  b.models = files;
  b.rounds = o.profile.rounds > 0 ? o.profile.rounds : 10;
  b.timing.warmup = o.profile.warmup;
  b.timing.repeats = std::max<int64_t>(o.profile.repeats, 3 * b.rounds);
  if (w.kind == "prefill") {
    b.contexts.clear();
    b.prefill = {w.tokens};
  } else {
    JNAS_CHECK_CONFIG(w.kind == "decode", "profile --runtime llama.cpp: workload '{}' (decode or prefill)", w.kind);
    b.contexts = {w.context};
  }
  const Json j = run_bench_llamacpp(b);
  const char* kind = w.kind == "prefill" ? "prefill" : "decode";
  const Json& d = j["models"][0][kind][0];
  s.dense_ms = d["ms"].get<double>();
  for (size_t i = 0; i < s.archs.size(); ++i) {
    const Json& r = j["models"][i + 1][kind][0];
    const double ratio = r["ratio_to_first"].get<double>();
    s.archs[i].measured_ms = ratio * s.dense_ms;
    s.measured_ratio.push_back(ratio);
    s.ratio_min.push_back(r["ratio_min"].get<double>());
    s.ratio_max.push_back(r["ratio_max"].get<double>());
  }
  return s;
}

// The validation JSON of profile::Validation plus the ratios to the dense f16 model.
Json validation_json(const GgufSample& s, const profile::LatencyTable& table, const profile::Workload& w,
                     const model::LlamaConfig& cfg) {
  // Predictions under the table as it is now (calibrated when a calibration was fitted).
  GgufSample v = s;
  const double dense_pred = profile::predict(cfg, dense_f16(cfg), table, w, kKvBytes).latency_ms;
  // Predicted ratios are of the reference a relative budget is resolved against (search_stage.cpp):
  // the dense f16 model as the calibration measured it, else the table's prediction of it.
  const profile::LatencyTable::Calibration* cal = table.calibration_for(w);
  const double reference = cal != nullptr && cal->reference_ms > 0 ? cal->reference_ms : dense_pred;
  std::vector<double> ratio_err;
  for (size_t i = 0; i < v.archs.size(); ++i) {
    const profile::MeasuredArch& a = v.archs[i];
    v.predicted_ratio.push_back(a.predicted_ms / reference);
    ratio_err.push_back(std::abs(v.predicted_ratio[i] - v.measured_ratio[i]) / v.measured_ratio[i]);
  }
  Json j = profile::summarize_validation(v.archs, table.calibration_for(w) != nullptr).to_json();
  for (size_t i = 0; i < v.archs.size(); ++i) {
    Json& row = j["rows"][i];
    row["predicted_ratio"] = v.predicted_ratio[i];
    row["measured_ratio"] = v.measured_ratio[i];
    row["measured_ratio_min"] = v.ratio_min[i];
    row["measured_ratio_max"] = v.ratio_max[i];
    row["ratio_error"] = (v.predicted_ratio[i] - v.measured_ratio[i]) / v.measured_ratio[i];
  }
  std::vector<double> sorted = ratio_err;
  std::sort(sorted.begin(), sorted.end());
  j["dense_f16_measured_ms"] = v.dense_ms;
  j["dense_f16_predicted_ms"] = dense_pred;
  j["ratio_reference_ms"] = reference;
  j["ratio_median_abs_error"] = sorted[sorted.size() / 2];
  j["ratio_max_abs_error"] = sorted.back();
  j["runtime"] = "llama.cpp";
  return j;
}

}  // namespace

Json run_profile_llamacpp(const ProfileStageOptions& o) {
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(o.config);
  const profile::Workload& w = o.workload;
  JNAS_CHECK_CONFIG(w.batch == 1, "profile --runtime llama.cpp: batch {} (llama.cpp is timed at batch 1, one sequence)",
                    w.batch);
  JNAS_CHECK_CONFIG(w.kind == "decode" || w.kind == "prefill",
                    "profile --runtime llama.cpp: workload '{}' (decode or prefill)", w.kind);
  const int requested = bounded_thread_count(o.run.threads, "--threads");
  const int threads = requested > 0 ? requested : machine_cores();
  const profile::CostSpace space = profile_space(o.space, cfg, "llama.cpp");  // its default: ggml types
  check_ggml_space(space, o.space.empty() ? std::string("(dense)") : o.space.str());
  // The space's keys and the dense f16 model's (the reference of budgets and ratios).
  std::vector<std::string> keys = profile::required_keys(cfg, space, w, true);
  const Json dense_space{{"layers", Json{{"formats", Json::array({"f16"})}}}};
  for (const std::string& k :
       profile::required_keys(cfg, profile::cost_space_from_json(dense_space, cfg, "(dense f16)"), w, true)) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  const int64_t rotate = rotate_bytes(cfg, space);
  const Json meta = llamacpp_meta(threads, rotate);
  profile::LatencyTable table = profile::load_reusable_table(o.out, meta);
  std::vector<std::string> todo;
  for (const std::string& k : keys) {
    if (o.force || !table.has(k)) todo.push_back(k);
  }
  JNAS_LOG_INFO("[profile] llama.cpp {} on {} threads, weights rotated through {:.1f} MiB: {} entries to measure ({} "
                "in the table)",
                llamacpp::version(), threads, rotate / 1048576.0, todo.size(), keys.size() - todo.size());
  {
    // Every key is timed in kPasses passes over the keys, each timing it for a share of the
    // repeats: a slow spell of a shared machine (about 100 ms long on this project's VMs) then
    // falls on one pass's samples of an entry, which the median over all of them drops. The
    // table is saved after each pass (a killed profile keeps what it measured).
    llamacpp::OpTimer timer(threads, rotate, static_cast<int>(o.profile.warmup),
                            static_cast<int>(std::max<int64_t>(3, o.profile.repeats / kPasses)));
    std::vector<std::vector<double>> samples(todo.size());
    for (int pass = 0; pass < kPasses && !todo.empty(); ++pass) {
      for (size_t i = 0; i < todo.size(); ++i) {
        const llamacpp::OpTime r = measure_entry(timer, todo[i]);
        samples[i].insert(samples[i].end(), r.samples.begin(), r.samples.end());
        const llamacpp::OpTime all = llamacpp::summarize(samples[i]);
        table.set(todo[i], {all.ms, all.p10, all.p90, static_cast<int>(all.samples.size())});
      }
      table.save(o.out);
      JNAS_LOG_INFO("[profile] pass {}/{} over {} entries", pass + 1, kPasses, todo.size());
    }
  }
  profile::stamp_meta(table, meta, w);
  table.save(o.out);
  Json j{{"out", o.out.str()},   {"entries", table.entries().size()}, {"required", keys.size()},
         {"workload", w.to_json()}, {"runtime", "llama.cpp"},          {"threads", threads}};
  const auto seed = static_cast<uint64_t>(o.seed);
  const std::string scratch = o.out.str() + ".gguf-timing";
  if (o.profile.calibrate > 0) {
    JNAS_CHECK_CONFIG(o.profile.calibrate >= 3, "calibration needs at least 3 measured runs, got {}",
                      o.profile.calibrate);
    table.calibration.erase(w.name());
    const GgufSample s = measure_gguf(cfg, space, table, w, static_cast<int>(o.profile.calibrate), seed + 1000003,
                                      true, o, threads, scratch, "calibrate");
    table.calibration[w.name()] = profile::calibration_from(s.archs, w.name());
    table.calibration[w.name()].reference_ms = s.dense_ms;
    const auto& cal = table.calibration[w.name()];
    JNAS_LOG_INFO("[calibrate] {}: latency = {:.4f} x sum + {:.4f} ms x blocks + {:.4f} ms ({} runs, {} outliers); "
                  "the dense f16 model measures {:.4f} ms",
                  w.name(), cal.scale, cal.per_block_ms, cal.constant_ms, cal.runs, cal.outliers, cal.reference_ms);
    j["calibration"] = cal.to_json();
    table.save(o.out);
  }
  if (o.profile.validate > 0) {
    const GgufSample s = measure_gguf(cfg, space, table, w, static_cast<int>(o.profile.validate), seed, false, o,
                                      threads, scratch, "validate");
    j["validation"] = validation_json(s, table, w, cfg);
    if (!o.validate_out.empty()) write_file_atomic(o.validate_out, j["validation"].dump(1) + "\n");
  }
  remove_tree(scratch);
  return j;
}

}  // namespace jointnas::pipeline
