// `jointnas run CONFIG.yaml`: every stage of the pipeline in one run directory, each as a child
// process of this same binary (importance -> profile -> search -> finetune -> bench -> eval ->
// report). A finished stage is recorded in RUN/stages.json (atomically) and skipped when the run
// is started again; the search resumes from its own checkpoints. SIGINT / SIGTERM reach the
// running stage, which checkpoints and exits 130; so does this command. docs/pipeline.md.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common.h"
#include "run_config.h"
#include "stage_runner.h"
#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"

namespace jointnas::cli {
namespace {

namespace fs = std::filesystem;

double json_ms(const Json& bench) {
  if (!bench.is_object() || !bench.contains("decode") || bench["decode"].empty()) return 0.0;
  return bench["decode"][0].value("ms", 0.0);
}

// summary.md (tables) and report.svg (the found architecture per layer), also printed.
void write_report(const std::string& run_dir, const Json& stages) {
  const Json arch = read_json_or_null(run_dir + "/search/arch.json");
  const Json search = read_json_or_null(run_dir + "/logs/search.json");
  const Json bo = read_json_or_null(run_dir + "/logs/bench_original.json");
  const Json bf = read_json_or_null(run_dir + "/logs/bench_found.json");
  const Json po = read_json_or_null(run_dir + "/logs/ppl_original.json");
  const Json pf = read_json_or_null(run_dir + "/logs/ppl_found.json");
  const Json ft = read_json_or_null(run_dir + "/logs/finetune.json");
  JNAS_CHECK_IO(arch.is_object() && search.is_object(), "{}: the search's outputs are missing; rerun", run_dir);
  const Json& dense = search["dense"];
  const Json& pred = arch["predicted"];
  auto num = [](const Json& j, const char* k) { return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; };
  auto mib = [&](const Json& c) { return (num(c, "weight_bytes") + num(c, "kv_cache_bytes")) / 1048576.0; };
  std::string md = fmt::format("# jointnas run: {}\n\n", run_dir);
  md += fmt::format("Budget: {}; workload: {}.\n\n", arch["budget"].dump(), arch["workload"].dump());
  md += "| | original | found |\n|---|---:|---:|\n";
  md += fmt::format("| decode latency, measured (ms) | {:.4f} | {:.4f} |\n", json_ms(bo), json_ms(bf));
  md += fmt::format("| decode latency, predicted by the table (ms) | {:.4f} | {:.4f} |\n", num(dense, "latency_ms"),
                    num(pred, "latency_ms"));
  md += fmt::format("| peak memory, predicted (MiB) | {:.3f} | {:.3f} |\n", num(dense, "peak_bytes") / 1048576.0,
                    num(pred, "peak_bytes") / 1048576.0);
  md += fmt::format("| of which weights + KV cache (MiB) | {:.3f} | {:.3f} |\n", mib(dense), mib(pred));
  md += fmt::format("| parameters | {:.0f} | {:.0f} |\n", num(dense, "params"), num(pred, "params"));
  if (po.is_object() && pf.is_object()) md += fmt::format("| perplexity (eval text) | {:.3f} | {:.3f} |\n", num(po, "ppl"), num(pf, "ppl"));
  // The user's budget (a closed-loop round holds the table to a tighter one: arch.json's).
  const double lat_budget = stages.value("budget_latency_ms", num(arch["budget"], "latency_ms"));
  if (lat_budget > 0 && json_ms(bf) > 0) {
    md += fmt::format("\nLatency budget {:.4f} ms: the found model measures {:.4f} ms, which {} the budget.\n", lat_budget,
                      json_ms(bf), json_ms(bf) <= lat_budget ? "meets" : "MISSES");
  }
  const double mem_budget = num(arch["budget"], "memory_bytes");
  if (mem_budget > 0) {
    md += fmt::format("\nMemory budget {:.3f} MiB: the found model's predicted peak is {:.3f} MiB, which {} the budget "
                      "(not measured: `bench` does not read the peak).\n",
                      mem_budget / 1048576.0, num(pred, "peak_bytes") / 1048576.0,
                      num(pred, "peak_bytes") <= mem_budget ? "meets" : "MISSES");
  }
  md += fmt::format("\nSearch: {} steps (stop: {}); finetune KD {:.4f} -> {:.4f}.\n\n", arch.value("steps_run", 0),
                    arch.value("stop_reason", std::string("?")), num(ft, "kd_first"), num(ft, "kd_last"));
  const Json& layers = arch["config"]["jointnas_layer_specs"];
  md += "| layer | kept | heads / kv | head size | MLP width | qkv | o | gate_up | down |\n|---:|---|---|---:|---:|---|---|---|---|\n";
  std::string svg;
  const int64_t n = static_cast<int64_t>(layers.size());
  const int W = 60 * static_cast<int>(n) + 80, H = 260;
  svg += fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="10">)", W, H);
  svg += R"(<text x="10" y="14" font-size="12">found architecture per layer: attention width (blue) and MLP width (orange) as a fraction of the widest choice</text>)";
  double max_attn = 1, max_mlp = 1;
  for (const Json& l : layers) {
    max_attn = std::max(max_attn, num(l, "num_attention_heads") * num(l, "head_dim"));
    max_mlp = std::max(max_mlp, num(l, "intermediate_size"));
  }
  for (int64_t i = 0; i < n; ++i) {
    const Json& l = layers[static_cast<size_t>(i)];
    const bool skip = l.value("skip", false);
    auto fmt_of = [&](const char* k) { return l.contains(k) ? l[k].get<std::string>() : std::string("bf16"); };
    md += fmt::format("| {} | {} | {:.0f} / {:.0f} | {:.0f} | {:.0f} | {} | {} | {} | {} |\n", i, skip ? "dropped" : "yes",
                      num(l, "num_attention_heads"), num(l, "num_key_value_heads"), num(l, "head_dim"),
                      num(l, "intermediate_size"), fmt_of("format_qkv"), fmt_of("format_o"), fmt_of("format_gate_up"),
                      fmt_of("format_down"));
    const int x = 50 + 60 * static_cast<int>(i);
    if (skip) {
      svg += fmt::format(R"(<rect x="{}" y="40" width="44" height="160" fill="#ddd"/><text x="{}" y="120">dropped</text>)", x, x + 2);
    } else {
      const double a = num(l, "num_attention_heads") * num(l, "head_dim") / max_attn, m = num(l, "intermediate_size") / max_mlp;
      svg += fmt::format(R"(<rect x="{}" y="{:.1f}" width="20" height="{:.1f}" fill="#4878d0"/>)", x, 200 - 160 * a, 160 * a);
      svg += fmt::format(R"(<rect x="{}" y="{:.1f}" width="20" height="{:.1f}" fill="#ee854a"/>)", x + 22, 200 - 160 * m, 160 * m);
      svg += fmt::format(R"(<text x="{}" y="215">{}</text><text x="{}" y="227">{}</text>)", x, fmt_of("format_qkv"), x,
                         fmt_of("format_down"));
    }
    svg += fmt::format(R"(<text x="{}" y="245">layer {}</text>)", x + 4, i);
  }
  svg += R"(<text x="10" y="215">qkv</text><text x="10" y="227">down</text></svg>)";
  md += "\n![found architecture](report.svg)\n";
  write_file_atomic(run_dir + "/summary.md", md);
  write_file_atomic(run_dir + "/report.svg", svg + "\n");
  std::cout << md << fmt::format("\nwrote {0}/summary.md and {0}/report.svg\n", run_dir);
}

struct RunFlagsR {
  std::string config, out;
  int closed_loop = -1;  // -1: the config's `closed_loop` (default 2)
};

void run(const RunFlagsR& f) {
  const RunConfig rc = load_run_config(f.config);
  const auto& interrupt = install_interrupt_handler();
  const std::string run_dir = f.out.empty() ? rc.path(rc.str(rc.j, "run_dir", "runs/" + fs::path(f.config).stem().string())) : f.out;
  std::error_code ec;
  fs::create_directories(fs::path(run_dir) / "logs", ec);
  JNAS_CHECK_IO(!ec, "cannot create the run directory {}: {}", run_dir, ec.message());
  Stages st(run_dir + "/stages.json", interrupt);
  Json& stages = st.json();
  // The config is part of the run: a different config in the same directory is refused.
  const std::string cfg_text = read_text_file(f.config);
  if (stages.contains("config")) {
    JNAS_CHECK_CONFIG(stages["config"] == cfg_text,
                      "{} was started with another config; use a new run directory (--out) or delete it", run_dir);
  }
  stages["config"] = cfg_text;
  st.save();

  const std::string model = rc.path(rc.str(rc.j, "model", ""));
  const std::string space = rc.path(rc.str(rc.j, "search_space", ""));
  const std::string device = rc.str(rc.j, "device", "cpu"), threads = rc.num(rc.j, "threads", "1");
  const Json& data = rc.section("data");
  const std::string calib = rc.path(rc.str(data, "calibration", ""));
  const std::string train = rc.path(rc.str(data, "train", rc.str(data, "calibration", "")));
  const std::string eval_text = data.contains("eval") ? rc.path(rc.str(data, "eval", "")) : "";
  const Json& wl = rc.section("workload");
  const Json& budget = rc.section("budget");
  const Json& imp = rc.section("importance");
  const Json& prof = rc.section("profile");
  const Json& se = rc.section("search");
  const Json& ft = rc.section("finetune");
  const Json& ev = rc.section("eval");
  // `table:` reuses a measured latency table (same device, same workload) instead of profiling.
  const std::string given_table = rc.j.contains("table") ? rc.path(rc.str(rc.j, "table", "")) : "";
  JNAS_CHECK_CONFIG(given_table.empty() || file_exists(given_table), "{}: table {} does not exist", rc.source, given_table);
  const std::string permuted = run_dir + "/permuted", search_dir = run_dir + "/search";
  const std::string table = given_table.empty() ? run_dir + "/table.json" : given_table;
  const std::string exported = run_dir + "/model";
  std::vector<std::string> common{"--device", device, "--threads", threads};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), common.begin(), common.end());
    return a;
  };
  std::vector<std::string> wl_args{"--workload", rc.str(wl, "kind", "decode"), "--batch", rc.num(wl, "batch", "1"),
                                   "--context", rc.num(wl, "context", "512"), "--tokens", rc.num(wl, "tokens", "2048")};
  std::vector<std::string> budget_args;
  if (budget.contains("latency")) budget_args.insert(budget_args.end(), {"--latency", rc.num(budget, "latency", "")});
  if (budget.contains("memory_mib")) budget_args.insert(budget_args.end(), {"--memory-mib", rc.num(budget, "memory_mib", "")});
  if (budget.contains("params")) budget_args.insert(budget_args.end(), {"--params", rc.num(budget, "params", "")});
  JNAS_CHECK_CONFIG(!budget_args.empty(), "{}: 'budget' needs latency (ms or 0.6x), memory_mib or params", rc.source);

  struct Stage {
    std::string name;
    std::vector<std::string> args;
  };
  std::vector<Stage> plan;
  plan.push_back({"importance", with({"importance", "--model", model, "--calib", calib, "--out", permuted, "--windows",
                                      rc.num(imp, "windows", "16"), "--seq-len", rc.num(imp, "seq_len", "128")})});
  if (given_table.empty()) {
    std::vector<std::string> a{"profile", "--config", permuted + "/config.json", "--space", space, "--out", table,
                               "--repeats", rc.num(prof, "repeats", "7")};
    a.insert(a.end(), wl_args.begin(), wl_args.end());
    // End-to-end runs of random sub-architectures fit the additive model's bias (dispatch gaps
    // between ops dominate small models): without them a tiny model's latency is underpredicted.
    if (prof.contains("calibrate")) a.insert(a.end(), {"--calibrate", rc.num(prof, "calibrate", "0"), "--seed", rc.num(rc.j, "seed", "0")});
    plan.push_back({"profile", with(a)});
  }
  {
    std::vector<std::string> a{"search", "--model", permuted, "--importance", permuted + "/importance.json", "--space",
                               space, "--table", table, "--text", train, "--out", search_dir, "--format", "json",
                               "--steps", rc.num(se, "steps", "100"), "--train-batch", rc.num(se, "batch", "4"),
                               "--seq-len", rc.num(se, "seq_len", "128"), "--lora-rank", rc.num(se, "lora_rank", "8"),
                               "--lr-arch", rc.num(se, "lr_arch", "0.05"), "--seed", rc.num(rc.j, "seed", "0"),
                               "--checkpoint-every", rc.num(se, "checkpoint_every", "10")};
    const auto knobs = search_knob_flags(se);  // optional, passed through when the config sets them
    a.insert(a.end(), knobs.begin(), knobs.end());
    a.insert(a.end(), wl_args.begin(), wl_args.end());
    a.insert(a.end(), budget_args.begin(), budget_args.end());
    plan.push_back({"search", with(a)});
  }
  plan.push_back({"finetune", with({"finetune", "--model", permuted, "--space", space, "--arch", search_dir + "/arch.json",
                                    "--out", exported, "--text", train, "--steps", rc.num(ft, "steps", "50"),
                                    "--train-batch", rc.num(ft, "batch", "4"), "--seq-len", rc.num(ft, "seq_len", "128"),
                                    "--seed", rc.num(rc.j, "seed", "0"), "--format", "json"})});
  const std::string ctx = rc.num(wl, "context", "512");
  plan.push_back({"bench_original", with({"bench", "--model", model, "--contexts", ctx, "--format", "json", "--repeats",
                                          rc.num(ev, "bench_repeats", "30")})});
  plan.push_back({"bench_found", with({"bench", "--model", exported, "--contexts", ctx, "--format", "json", "--repeats",
                                       rc.num(ev, "bench_repeats", "30")})});
  if (!eval_text.empty()) {
    for (const auto& [name, m] : {std::pair{"ppl_original", model}, std::pair{"ppl_found", exported}}) {
      plan.push_back({name, with({"eval", "ppl", "--model", m, "--text", eval_text, "--max-windows",
                                  rc.num(ev, "max_windows", "64"), "--window", rc.num(ev, "window", "257"), "--format", "json"})});
    }
  }
  // Runs a stage unless stages.json says it is done; its stdout goes to logs/<log_name>.json.
  auto run_stage = [&](const Stage& s, const std::string& log_name) {
    st.run({s.name, s.args, run_dir + "/logs/" + log_name + ".json"});
  };
  for (const Stage& s : plan) {
    run_stage(s, s.name);
    if (s.name == "search" && !stages.contains("budget_latency_ms")) {
      // The user's latency budget in ms (a "0.6x" resolved by the search), before any correction.
      const Json aj = read_json_file(search_dir + "/arch.json");
      stages["budget_latency_ms"] = aj["budget"].value("latency_ms", 0.0);
      st.save();
    }
  }
  // Closed loop (method.md): the exported model is measured; when it misses the latency budget,
  // the table's bias near this architecture (measured / predicted) tightens the budget the table
  // is held to, the search's final logits are repaired again (the search resumes at its end), and
  // the result is finetuned and measured again. At most `closed_loop` rounds (default 2).
  const double budget_ms = stages.value("budget_latency_ms", 0.0);
  const int rounds = f.closed_loop >= 0 ? f.closed_loop : static_cast<int>(rc.integer(rc.j, "closed_loop", 2, 0, 1000));
  for (int k = 1; k <= rounds && budget_ms > 0; ++k) {
    const double measured = json_ms(read_json_or_null(run_dir + "/logs/bench_found.json"));
    const double predicted = read_json_file(search_dir + "/arch.json")["predicted"].value("latency_ms", 0.0);
    if (measured <= 0 || predicted <= 0 || measured <= budget_ms) break;
    const double corrected = budget_ms * predicted / measured;
    JNAS_LOG_WARN("[run] the found model measures {:.4f} ms against the {:.4f} ms budget (table: {:.4f} ms); round {}: "
                  "holding the table to {:.4f} ms",
                  measured, budget_ms, predicted, k, corrected);
    for (const Stage& s : plan) {
      if (s.name != "search" && s.name != "finetune" && s.name != "bench_found" && s.name != "ppl_found") continue;
      Stage c{fmt::format("closed_loop_{}_{}", k, s.name), s.args};
      if (s.name == "search") {
        auto it = std::find(c.args.begin(), c.args.end(), "--latency");
        JNAS_CHECK_CONFIG(it != c.args.end() && it + 1 != c.args.end(), "closed loop: the search has no --latency");
        *(it + 1) = fmt::format("{:.6f}", corrected);
      }
      try {
        run_stage(c, s.name);  // the same log files: the report reads the latest
      } catch (const Interrupted&) {
        throw;
      } catch (const Error&) {
        // Typically the corrected budget is below what the space can reach: report what was
        // measured (the report says the budget is missed), then fail.
        write_report(run_dir, stages);
        throw IoError(fmt::format("closed-loop round {} could not meet the {:.4f} ms budget on this device (the found "
                                  "model measures {:.4f} ms, the table predicted {:.4f} ms); see the error above and {}/summary.md",
                                  k, budget_ms, measured, predicted, run_dir));
      }
    }
  }
  write_report(run_dir, stages);
}

}  // namespace

void register_run(CLI::App& app) {
  auto f = std::make_shared<RunFlagsR>();
  auto* sub = app.add_subcommand("run", "Every stage in one run directory (resumes past finished stages)");
  sub->add_option("config", f->config, "Run config YAML (configs/runs/)")->required();
  sub->add_option("--out", f->out, "Run directory (default: run_dir of the config)");
  sub->add_option("--closed-loop", f->closed_loop, "Closed-loop correction rounds (overrides the config's closed_loop; 0 = off)");
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
