// Issue 9, acceptance 1 (label `slow`): `jointnas run` on stories260K killed with SIGKILL at 20
// random moments (one per trial, anywhere from importance to the last perplexity), then run again
// to the end: every trial ends with the arch.json and the exported model.safetensors of an
// uninterrupted run, byte for byte. All runs share one measured latency table (`table:`), since
// two profilings measure different numbers; everything else is recomputed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli_util.h"
#include "tensor_assert.h"

using jointnas::testing::shared_path;
using namespace jointnas::testing::cli;

namespace {

// Starts `jointnas run CFG` in its own process group, output discarded.
pid_t start_run(const std::string& cfg) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    execl(JNAS_BIN, JNAS_BIN, "run", cfg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

// Waits up to `seconds` for `pid`; true when it exited (status in *code).
bool wait_for(pid_t pid, double seconds, int* code) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace

TEST(CliSlow, RunSurvivesKillAtTwentyRandomMoments) {
  const std::string text = shared_path("data/text/tinystories/tinystories_val_head.txt");
  if (!fs::exists(text)) GTEST_SKIP() << "no " << text;
  const fs::path root = scratch("kill20");
  auto write_config = [&](const std::string& name, const std::string& table_line) {
    return write_tiny_run_config(root, name, table_line, "calibration: " + text + ", eval: " + text,
                                 "search: {steps: 30, batch: 2, seq_len: 64, lora_rank: 2, lr_arch: 0.1, checkpoint_every: 3, heldout_windows: 4, heldout_seq_len: 64, candidate_steps: 4, eval_every: 2, measured_fit: 0}\n"
                                 "finetune: {steps: 12, batch: 2, seq_len: 64}\n"
                                 "eval: {bench_repeats: 3, max_windows: 4, window: 65}\n");
  };
  const CmdResult measured = run("run " + write_config("measured", ""));
  ASSERT_EQ(measured.code, 0) << measured.err;
  const std::string table = "table: " + (root / "measured" / "table.json").string() + "\n";
  // The uninterrupted reference on that table, timed: kill moments are drawn over its duration.
  const auto t0 = std::chrono::steady_clock::now();
  const CmdResult ref = run("run " + write_config("ref", table));
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ref.code, 0) << ref.err;
  const std::string want_arch = slurp(root / "ref" / "search" / "arch.json");
  const std::string want_model = slurp(root / "ref" / "model" / "model.safetensors");
  ASSERT_FALSE(want_arch.empty());
  ASSERT_FALSE(want_model.empty());

  std::mt19937_64 rng(2026);
  std::uniform_real_distribution<double> moment(0.02, 0.98);
  for (int trial = 0; trial < 20; ++trial) {
    const std::string name = fmt::format("trial{:02d}", trial);
    const std::string cfg = write_config(name, table);
    // A run that finishes before its moment (the machine got faster) is redone with the moment
    // halved, so that every trial is a real kill.
    double at = moment(rng) * total;
    bool finished = true;
    for (int attempt = 0; attempt < 4; ++attempt) {
      jointnas::remove_tree((root / name).string());
      const pid_t pid = start_run(cfg);
      int code = 0;
      finished = wait_for(pid, at, &code);
      if (!finished) {
        kill(-pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        break;
      }
      at *= 0.5;
    }
    ASSERT_FALSE(finished) << "trial " << trial << ": every attempt finished before its kill";
    // Which stages it had finished when it died (for the record, and the failure message).
    const std::string stages = slurp(root / name / "stages.json");
    std::string done;
    for (const char* s : {"importance", "search", "finetune", "latency", "ppl_original"}) {
      if (stages.find(fmt::format("\"{}\": {{\n  \"done\": true", s)) != std::string::npos) done += std::string(s) + " ";
    }
    std::cerr << fmt::format("[kill20] trial {:2d}: SIGKILL at {:.2f} s of {:.2f} s; stages done: {}\n", trial,
                             at, total, done.empty() ? "none" : done);
    const CmdResult again = run("run " + cfg);
    ASSERT_EQ(again.code, 0) << "trial " << trial << ": " << again.err;
    EXPECT_EQ(slurp(root / name / "search" / "arch.json"), want_arch) << "trial " << trial;
    EXPECT_EQ(slurp(root / name / "model" / "model.safetensors"), want_model) << "trial " << trial;
    if (!::testing::Test::HasFailure()) jointnas::remove_tree((root / name).string());
  }
}
