// Fuzz target: the run config of `jointnas run` (configs/runs/*.yaml; parse_run_config), then
// every read `jointnas run` makes of it before starting a stage, through the same accessors.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tools/jointnas/run_config.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const cli::RunConfig rc = cli::parse_run_config(text, "configs/runs/fuzz.yaml");
    // Top-level keys (cmd_run.cpp, run()).
    for (const char* k : {"run_dir", "model", "search_space", "device", "table"}) (void)rc.path(rc.str(rc.j, k, ""));
    for (const char* k : {"threads", "seed"}) (void)rc.num(rc.j, k, "0");
    (void)rc.integer(rc.j, "closed_loop", 2, 0, 1000);
    const Json& d = rc.section("data");
    for (const char* k : {"calibration", "train", "eval"}) (void)rc.path(rc.str(d, k, ""));
    const Json& wl = rc.section("workload");
    (void)rc.str(wl, "kind", "decode");
    for (const char* k : {"batch", "context", "tokens"}) (void)rc.num(wl, k, "1");
    const Json& budget = rc.section("budget");
    for (const char* k : {"latency", "memory_mib", "params"}) (void)rc.num(budget, k, "");
    const Json& imp = rc.section("importance");
    for (const char* k : {"windows", "seq_len"}) (void)rc.num(imp, k, "1");
    const Json& prof = rc.section("profile");
    for (const char* k : {"repeats", "calibrate"}) (void)rc.num(prof, k, "1");
    const Json& se = rc.section("search");
    for (const char* k : {"steps", "batch", "seq_len", "lora_rank", "lr_arch", "checkpoint_every"}) {
      (void)rc.num(se, k, "1");
    }
    for (const char* k : {"entropy_weight", "penalty", "penalty_form", "lr_lora", "entropy_threshold",
                          "stop_entropy", "mixing", "relaxation", "tau_end"}) {
      if (se.contains(k)) (void)(se[k].is_string() ? se[k].get<std::string>() : se[k].dump());
    }
    const Json& ft = rc.section("finetune");
    for (const char* k : {"steps", "batch", "seq_len"}) (void)rc.num(ft, k, "1");
    const Json& ev = rc.section("eval");
    for (const char* k : {"bench_repeats", "max_windows", "window"}) (void)rc.num(ev, k, "1");
  });
  return 0;
}
