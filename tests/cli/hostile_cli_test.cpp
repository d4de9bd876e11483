// Issue 26 through the binary: hostile and careless inputs (the part ported so far: outputs that
// alias inputs, the run-directory lock, side files that leave the model directory, planted
// temporaries, thread counts). Each case asserts the exit code and that the message names the
// file or key.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <cstring>
#include <limits>

#include <cstdlib>
#include <string>

// JNAS_TEST_BIN=/path/to/jointnas runs these cases against another build (how they were checked
// to fail on the code before issue 26).
static const char* const kBuiltJnasBin = JNAS_BIN;
inline const char* jnas_test_binary() {
  const char* e = std::getenv("JNAS_TEST_BIN");
  return e != nullptr && *e != '\0' ? e : kBuiltJnasBin;
}
#undef JNAS_BIN
#define JNAS_BIN jnas_test_binary()

#include "cli_util.h"
#include "jointnas/core/dir_lock.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas::testing::cli {
namespace {

struct Measured {
  CmdResult r;
  int64_t peak_rss_bytes = 0;
  double seconds = 0;
};

// Runs the binary with `args` split on spaces (no shell), and measures its peak RSS.
Measured run_measured(const std::string& args) {
  std::vector<std::string> words{JNAS_BIN};
  for (size_t a = 0; a < args.size();) {
    size_t b = args.find(' ', a);
    if (b == std::string::npos) b = args.size();
    if (b > a) words.push_back(args.substr(a, b - a));
    a = b + 1;
  }
  const fs::path out = fs::temp_directory_path() / ("jnas_hostile_out_" + std::to_string(getpid()));
  const fs::path err = fs::temp_directory_path() / ("jnas_hostile_err_" + std::to_string(getpid()));
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  m.r.out = slurp(out);
  m.r.err = slurp(err);
  m.peak_rss_bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  return m;
}

std::string stories() { return repo_path("models/stories260K/stories260K.bin"); }

// stories260K as an HF directory (config.json, model.safetensors, tokenizer.bin + config).
fs::path stories_hf(const fs::path& root, const std::string& name = "hf") {
  const fs::path d = root / name;
  const CmdResult c = run("convert --model " + stories() + " --out " + d.string());
  EXPECT_EQ(c.code, 0) << c.err;
  return d;
}

void expect_message(const CmdResult& r, int code, std::initializer_list<std::string> needles) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;  // after any log lines
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "no '" << n << "' in: " << r.err;
}

}  // namespace

// ---- outputs that alias or contain inputs ----

TEST(Hostile, AnOutputEqualToTheInputModelIsRefusedAndTheInputKept) {
  const fs::path d = scratch("hostile_alias");
  const fs::path m = stories_hf(d);
  const std::string before = slurp(m / "model.safetensors") + slurp(m / "config.json");
  const std::string text = repo_path("models/stories260K/expected_greedy_text.txt");
  for (const std::string& cmd : {"quantize --model " + m.string() + " --precision w8a16 --out " + m.string(),
                                 "quantize --model " + m.string() + " --precision w8a16 --out " + m.string() + "/",
                                 "convert --model " + m.string() + " --out " + m.string(),
                                 "importance --model " + m.string() + " --calib " + text + " --out " + m.string()}) {
    SCOPED_TRACE(cmd);
    expect_message(run(cmd), 2, {"--out", "--model", m.string()});
  }
  EXPECT_EQ(slurp(m / "model.safetensors") + slurp(m / "config.json"), before);
}

TEST(Hostile, ARunDirectoryThatContainsTheInputModelIsRefusedBeforeAnyStage) {
  const fs::path d = scratch("hostile_rundir");
  const fs::path m = stories_hf(d / "run", "model");  // the run's own export path
  const std::string before = slurp(m / "model.safetensors");
  const fs::path cfg = d / "cfg.yaml";
  std::ofstream(cfg) << "model: " << m.string() << "\nsearch_space: " << repo_path("configs/spaces/stories260k.yaml")
                     << "\nrun_dir: " << (d / "run").string() << "\ndata: {calibration: " << stories()
                     << "}\nbudget: {latency: 0.7x}\nworkload: {kind: decode, batch: 1, context: 256}\n";
  const Measured r = run_measured("run " + cfg.string());
  expect_message(r.r, 2, {"run_dir", (d / "run").string(), "model"});
  EXPECT_LT(r.seconds, 20.0) << "a stage ran before the check";
  EXPECT_FALSE(fs::exists(d / "run" / "stages.json"));
  EXPECT_EQ(slurp(m / "model.safetensors"), before);
}

TEST(Hostile, ARunDirectoryInUseIsRefusedWithTheHolderNamed) {
  const fs::path d = scratch("hostile_lock");
  const std::string text = shared_path("data/text/tinystories/tinystories_val_head.txt");
  const fs::path cfg = d / "cfg.yaml";
  std::ofstream(cfg) << "model: " << stories() << "\nsearch_space: " << repo_path("configs/spaces/stories260k.yaml")
                     << "\nrun_dir: " << (d / "run").string() << "\ndata: {calibration: " << text
                     << ", eval: " << text << "}\nbudget: {latency: 0.7x}\nworkload: {kind: decode, batch: 1, context: 256}\n"
                     << "eval: {window: 257}\npareto: {budgets: [0.5x]}\n";
  DirLock held = DirLock::acquire((d / "run").string(), "the test holding the lock");
  for (const char* cmd : {"run ", "pareto "}) {
    SCOPED_TRACE(cmd);
    const Measured r = run_measured(cmd + cfg.string());
    expect_message(r.r, 2, {(d / "run").string(), "the test holding the lock", std::to_string(getpid())});
    EXPECT_NE(r.r.err.find("hint: "), std::string::npos) << r.r.err;
    EXPECT_LT(r.seconds, 20.0);
  }
}

TEST(Hostile, SideFilesThatLeaveTheModelDirectoryAreNeitherReadNorCopied) {
  const fs::path d = scratch("hostile_side");
  const fs::path m = stories_hf(d);
  std::ofstream(d / "secret.txt") << "{\"secret\": \"do not copy\"}";
  fs::create_symlink(d / "secret.txt", m / "special_tokens_map.json");
  for (const std::string& cmd : {"convert --model " + m.string() + " --out " + (d / "c").string(),
                                 "quantize --model " + m.string() + " --precision w8a16 --out " + (d / "q").string()}) {
    SCOPED_TRACE(cmd);
    expect_message(run(cmd), 3, {"special_tokens_map.json", "outside"});
  }
  EXPECT_FALSE(fs::exists(d / "c" / "special_tokens_map.json"));
  EXPECT_FALSE(fs::exists(d / "q" / "special_tokens_map.json"));
}

TEST(Hostile, APlantedTemporarySymlinkDoesNotRedirectAWrite) {
  const fs::path d = scratch("hostile_planted");
  fs::create_directories(d / "out");
  std::ofstream(d / "victim.txt") << "precious";
  for (const char* name : {"config.json.tmp", "model.safetensors.tmp", "tokenizer.bin.tmp"}) {
    fs::create_symlink(d / "victim.txt", d / "out" / name);
  }
  const CmdResult c = run("convert --model " + stories() + " --out " + (d / "out").string());
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(slurp(d / "victim.txt"), "precious");
  EXPECT_TRUE(fs::exists(d / "out" / "config.json"));
}

TEST(Hostile, ThreadCountsAreCappedByTheCores) {
  // 1000 threads turned a 0.4 s job into 23 s (and 100000 into minutes).
  const Measured r = run_measured("generate --model " + stories() + " -n 8 --threads 1000");
  EXPECT_EQ(r.r.code, 0) << r.r.err;
  EXPECT_NE(r.r.err.find("--threads 1000"), std::string::npos) << r.r.err;
  EXPECT_NE(r.r.err.find("cores"), std::string::npos) << r.r.err;
  EXPECT_LT(r.seconds, 15.0);
}

// ---- silent wrong answers ----

// NaN weights: generate printed token 0 forever and eval ppl reported "ppl": null, both exit 0.
// Now both exit 3 naming the weight. The NaNs go into the llama2.c file's token embedding table
// (float32 after the 7-integer header).
TEST(Hostile, NanWeightsAreNamedInsteadOfAWrongAnswer) {
  const fs::path d = scratch("hostile_nan");
  fs::create_directories(d);
  fs::copy_file(stories(), d / "stories260K.bin");
  fs::copy_file(repo_path("models/stories260K/tok512.bin"), d / "tok512.bin");
  {
    std::fstream f(d / "stories260K.bin", std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int k = 0; k < 64 * 512; k += 97) {  // spread over the [512, 64] table
      f.seekp(28 + 4 * static_cast<std::streamoff>(k));
      f.write(reinterpret_cast<const char*>(&nan), sizeof nan);
    }
  }
  {
    std::ofstream t(d / "text.txt");
    for (int i = 0; i < 80; ++i) t << "Once upon a time there was a little dog. It liked to play in the park.\n";
  }
  const std::string model = (d / "stories260K.bin").string();
  expect_message(run("eval ppl --model " + model + " --text " + (d / "text.txt").string()), 3,
                 {"perplexity is not finite", "embed_tokens", "NaN or Inf"});
  expect_message(run("generate --model " + model + " --prompt Once -n 8"), 3,
                 {"logits are not finite", "embed_tokens"});
  // The original file is untouched and finite: both succeed.
  EXPECT_EQ(run("generate --model " + stories() + " --prompt Once -n 4").code, 0);
}

// A config.json with fewer layers than the weights hold ran a smaller model without a word (4 of
// 8 layers, 36 tensors ignored). Every tensor must be one the model reads.
TEST(Hostile, AConfigWithFewerLayersThanTheWeightsIsRefused) {
  const fs::path d = scratch("hostile_layers");
  const fs::path m = stories_hf(d);
  Json c = read_json_file((m / "config.json").string());
  ASSERT_EQ(c["num_hidden_layers"].get<int64_t>(), 5);
  c["num_hidden_layers"] = 4;
  std::ofstream(m / "config.json", std::ios::trunc) << c.dump(2);
  for (const std::string& cmd : {"generate --model " + m.string() + " --prompt Once -n 2", "inspect " + m.string()}) {
    SCOPED_TRACE(cmd);
    expect_message(run(cmd), 3,
                   {(m / "config.json").string(), "model.layers.4.", "not be used", "layers 0 to 4",
                    "num_hidden_layers is 4"});
  }
}

// Text is read and tokenized in bounded blocks and scored as it streams, and only as far as
// --max-windows needs: a 48 MB one-line file (one document) and a 48 MB file of ordinary
// paragraphs cost what a small file costs, within 64 MiB. Before, the whole file was read and
// tokenized at once: the long line alone took about 700 MB (llama2.c tokenizer, 14.8 GB per GB).
TEST(Hostile, EvalPplMemoryDoesNotGrowWithTheText) {
  const fs::path d = scratch("hostile_ppl_rss");
  const std::string head = read_text_file(shared_path("data/text/tinystories/tinystories_val_head.txt"));
  std::string line = head;
  for (char& ch : line) {
    if (ch == '\n') ch = ' ';
  }
  const size_t big = 48u << 20;
  {
    std::ofstream small(d / "small.txt"), one(d / "one_line.txt"), many(d / "paragraphs.txt");
    small << head;
    for (size_t n = 0; n < big; n += line.size()) one << line;
    for (size_t n = 0; n < big; n += head.size()) many << head;
  }
  const std::string cmd = "eval ppl --model " + stories() + " --max-windows 4 --format json --text ";
  const Measured base = run_measured(cmd + (d / "small.txt").string());
  ASSERT_EQ(base.r.code, 0) << base.r.err;
  for (const char* f : {"one_line.txt", "paragraphs.txt"}) {
    SCOPED_TRACE(f);
    const Measured r = run_measured(cmd + (d / f).string());
    ASSERT_EQ(r.r.code, 0) << r.r.err;
    EXPECT_LT(r.peak_rss_bytes - base.peak_rss_bytes, int64_t(64) << 20)
        << "peak RSS " << r.peak_rss_bytes / 1048576 << " MiB against " << base.peak_rss_bytes / 1048576 << " MiB";
    // Reading stopped once the 4 windows were had, and the output says so.
    const Json j = parse_json(r.r.out, "stdout");
    EXPECT_EQ(j["windows"].get<int64_t>(), 4);
    EXPECT_FALSE(j["text_complete"].get<bool>());
    EXPECT_LT(j["stream_tokens"].get<int64_t>(), int64_t(big / 64));
  }
  fs::remove_all(d);
}

// max_position_embeddings 2^22 (inside the validated range) built 2 x 2^22 x head_dim RoPE tables
// and their temporaries at load, whatever context was used; 2^24 built about 15 GB.
TEST(Hostile, RopeTablesDoNotGrowWithMaxPositionEmbeddings) {
  const fs::path d = scratch("hostile_rope");
  const fs::path m = stories_hf(d);
  const Measured base = run_measured("generate --model " + m.string() + " --prompt Once -n 8");
  ASSERT_EQ(base.r.code, 0) << base.r.err;
  Json c = read_json_file((m / "config.json").string());
  c["max_position_embeddings"] = 4194304;
  std::ofstream(m / "config.json", std::ios::trunc) << c.dump(2);
  const Measured r = run_measured("generate --model " + m.string() + " --prompt Once -n 8");
  ASSERT_EQ(r.r.code, 0) << r.r.err;
  EXPECT_EQ(r.r.out, base.r.out);
  EXPECT_LT(r.peak_rss_bytes - base.peak_rss_bytes, int64_t(64) << 20)
      << "peak RSS " << r.peak_rss_bytes / 1048576 << " MiB against " << base.peak_rss_bytes / 1048576 << " MiB";
}

// A window whose logits alone need terabytes was a bad_alloc (exit 1) or the OOM killer; it is
// refused before anything is read or allocated, naming the flags to change. In a run config, a
// batch that cannot fit is refused by the validation pass, before any stage.
TEST(Hostile, AValueThatCannotFitTheMachinesMemoryIsRefusedBeforeAllocating) {
  const fs::path d = scratch("hostile_memory");
  const fs::path m = stories_hf(d);
  Json c = read_json_file((m / "config.json").string());
  c["max_position_embeddings"] = 16777216;
  std::ofstream(m / "config.json", std::ios::trunc) << c.dump(2);
  const std::string text = shared_path("data/text/tinystories/tinystories_val_head.txt");
  const Measured r =
      run_measured("eval ppl --model " + m.string() + " --text " + text + " --window 16000000 --batch 64");
  expect_message(r.r, 2, {"GiB", "--window", "--batch"});
  EXPECT_LT(r.peak_rss_bytes, int64_t(1) << 30);

  const fs::path cfg = d / "cfg.yaml";
  std::ofstream(cfg) << "model: " << stories() << "\nsearch_space: " << repo_path("configs/spaces/stories260k.yaml")
                     << "\nrun_dir: " << (d / "run").string() << "\ndata: {calibration: " << text
                     << "}\nbudget: {latency: 0.7x}\nworkload: {kind: decode, batch: 1, context: 256}\n"
                     << "search: {batch: 65536, seq_len: 512}\n";
  const Measured run = run_measured("run " + cfg.string());
  expect_message(run.r, 2, {cfg.string(), "'search.batch'", "GiB"});
  EXPECT_LT(run.seconds, 20.0) << "a stage ran before the check";
  EXPECT_FALSE(fs::exists(d / "run" / "stages.json"));
}

// profile times each entry with buffers of the model's and the workload's sizes: a decode batch of
// 2^20 at context 511 asked LibTorch's allocator for 2 x 16 GiB of K and V and aborted (signal 6)
// instead of an error. Every entry is checked against the machine's memory before any is timed.
TEST(Hostile, ProfileRefusesEntriesThatCannotFitBeforeTimingAny) {
  const fs::path d = scratch("hostile_profile_memory");
  const fs::path m = stories_hf(d);
  const Measured r = run_measured("profile --config " + (m / "config.json").string() + " --space " +
                                  repo_path("configs/spaces/stories260k.yaml") + " --out " + (d / "t.json").string() +
                                  " --workload decode --batch 1048576 --context 511");
  expect_message(r.r, 2, {"latency-table entry 'attention/b1048576", "GiB", "batch, context"});
  EXPECT_LT(r.seconds, 20.0) << "entries were timed before the check";
  EXPECT_LT(r.peak_rss_bytes, int64_t(1) << 30);
  EXPECT_FALSE(fs::exists(d / "t.json"));
}

}  // namespace jointnas::testing::cli
