// `jointnas pareto` end to end on the bundled stories260K (two budgets, every method, tiny
// training), then the properties its report must have: every point measured, the baselines are
// what they claim to be (same structure as the architecture-only search with uniform formats;
// depth only), the headline numbers computed from the measured fronts, the charts drawn, and a
// rerun skips every finished stage.
#include <algorithm>
#include <set>
#include <vector>

#include "cli_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/pipeline/study_plan.h"

namespace jointnas::testing::cli {
namespace {

std::string write_pareto_config(const fs::path& root, const std::string& text) {
  const fs::path p = root / "pareto.yaml";
  std::ofstream(p) << "model: " << repo_path("models/stories260K/stories260K.bin") << "\n"
                   << "search_space: " << repo_path("configs/spaces/stories260k.yaml") << "\n"
                   << "run_dir: " << (root / "study").string() << "\n"
                   << "data: {calibration: " << text << ", eval: " << text << "}\n"
                   << "workload: {kind: decode, batch: 1, context: 64}\n"
                   << "importance: {windows: 4, seq_len: 64}\n"
                   << "profile: {repeats: 3}\n"
                   << "search: {steps: 6, batch: 2, seq_len: 64, lora_rank: 2, lr_arch: 0.2, heldout_windows: 4, heldout_seq_len: 64, candidate_steps: 4, eval_every: 2, measured_fit: 1, measure_rounds: 1}\n"
                   << "finetune: {steps: 2, batch: 2, seq_len: 64}\n"
                   << "eval: {bench_repeats: 3, bench_rounds: 3, max_windows: 4, window: 65}\n"
                   << "pareto:\n"
                   << "  budgets: [0.5x, 0.8x]\n"
                   << "  sequential_formats: [w8a16]\n"
                   << "  quant_formats: [w8a16]\n"
                   << "  seeds: [0, 1]\n"
                   << "  seed_budgets: [0.8x]\n"
                   << "  parallel: 2\n";
  return p.string();
}

TEST(Pareto, EveryMethodMeasuredAndReported) {
  const std::string text = shared_path("data/text/tinystories/tinystories_val_head.txt");
  if (!fs::exists(text)) GTEST_SKIP() << "no " << text;
  const fs::path root = scratch("pareto");
  const std::string cfg = write_pareto_config(root, text);
  const CmdResult r = run("pareto " + cfg);
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path rd = root / "study" / "report";
  const Json points = read_json_file((rd / "points.json").string());

  // original + joint (2 budgets + 1 extra seed) + per budget arch_only, seq_w8a16, seq_mix,
  // depth_only + quant_w8a16.
  std::set<std::string> ids;
  for (const Json& p : points) ids.insert(p["id"].get<std::string>());
  const std::set<std::string> want{"original",       "joint-0.5x-s0",     "joint-0.8x-s0",    "joint-0.8x-s1",
                                   "arch_only-0.5x", "arch_only-0.8x",    "seq_w8a16-0.5x",   "seq_w8a16-0.8x",
                                   "seq_mix-0.5x",   "seq_mix-0.8x",      "depth_only-0.5x",  "depth_only-0.8x",
                                   "quant_w8a16"};
  // Plus the matched joint points the study decided after its first latency stage (stages.json).
  const Json stages = read_json_file((root / "study" / "stages.json").string());
  // Matched in one or two passes (the second on the measurement after the first's points).
  const int passes = stages.value("matched_passes", 0);
  EXPECT_TRUE(passes == 1 || passes == 2) << passes;
  std::set<std::string> matched;
  for (const Json& m : stages.value("matched", Json::array())) matched.insert("joint-" + m["budget"].get<std::string>() + "-s0");
  // A matched point's search has its baseline's architecture among the candidates, measured
  // exactly as its limit model and so kept.
  for (const std::string& id : matched) {
    const Json aj = read_json_file((root / "study" / "points" / id / "search" / "arch.json").string());
    const Json& fit = aj["selection"]["measured_fit"]["candidates"];
    ASSERT_TRUE(fit.contains("matched")) << id << ": " << fit.dump();
    EXPECT_TRUE(fit["matched"].contains("kept")) << id << ": " << fit["matched"].dump();
  }
  std::set<std::string> want_all = want;
  want_all.insert(matched.begin(), matched.end());
  EXPECT_EQ(ids, want_all);
  std::map<std::string, Json> by_id;
  for (const Json& p : points) {
    by_id[p["id"].get<std::string>()] = p;
    // A per-layer mix whose structure leaves precision too little to buy ends over its budget: it is
    // measured, and reported as unable to meet the budget instead of as a point of it (issue 22).
    // A point the latency stage (or the joint search's measured fit) times over its budget is
    // reported so; this tiny study's models are timed in 3 rounds beside other tests.
    const std::string st = p["status"].get<std::string>();
    if (st.rfind("cannot meet the budget: predicted", 0) == 0) {
      EXPECT_EQ(p["method"], "seq_mix") << p.dump();
    } else if (st.rfind("over its budget: measures ", 0) != 0 && st.rfind("cannot meet the budget: measures ", 0) != 0) {
      EXPECT_EQ(st, "measured") << p.dump();
    }
    EXPECT_TRUE(p["measured_ms"].is_number() && p["measured_ms"].get<double>() > 0) << p.dump();
    EXPECT_TRUE(p["ppl"].is_number() && p["ppl"].get<double>() > 1) << p.dump();
    EXPECT_TRUE(p["kl"].is_number() && p["kl"].get<double>() >= 0) << p.dump();
    // The predicted peak (what a memory budget bounds) is at least the weights + KV cache.
    ASSERT_TRUE(p["peak_mib_predicted"].is_number()) << p.dump();
    EXPECT_GT(p["peak_mib_predicted"].get<double>(), p["weights_kv_mib_predicted"].get<double>()) << p.dump();
  }
  EXPECT_NEAR(by_id["original"]["kl"].get<double>(), 0.0, 1e-6);  // the original against itself

  // Latency: every point timed in one process, the same interleaved rounds, the original first;
  // a point's latency is its fastest round.
  const Json lat = jointnas::read_json_file((root / "study" / "logs" / "latency.json").string());
  ASSERT_TRUE(lat["models"].is_array());
  // Byte-identical models are timed once (stages.json same_model: a point's model -> the one timed).
  const Json same = stages.value("same_model", Json::object());
  EXPECT_EQ(lat["models"].size(), by_id.size() - same.size());
  EXPECT_DOUBLE_EQ(lat["models"][0]["decode"][0]["ratio_to_first"].get<double>(), 1.0);
  for (const Json& m : lat["models"]) {
    const Json& r = m["decode"][0];
    std::vector<double> ms = r["rounds_ms"].get<std::vector<double>>();
    ASSERT_EQ(ms.size(), lat["rounds"].get<size_t>());
    std::sort(ms.begin(), ms.end());
    EXPECT_DOUBLE_EQ(r["ms"].get<double>(), ms[ms.size() / 2]);
    EXPECT_DOUBLE_EQ(r["ms_best"].get<double>(), ms.front());
  }
  for (const std::string id : {"original", "joint-0.5x-s0", "depth_only-0.8x"}) {
    bool found = false;
    for (const Json& m : lat["models"]) {
      const std::string path = m["model"].get<std::string>();
      std::string timed = "/points/" + id + "/";
      for (const auto& [point, as] : same.items()) {
        if (point.find(timed) != std::string::npos) timed = as.get<std::string>().substr(as.get<std::string>().find("/points/"));
      }
      if (timed.back() != '/') timed = timed.substr(0, timed.rfind('/') + 1);
      const bool mine = id == "original" ? &m == &lat["models"][0] : path.find(timed) != std::string::npos;
      if (!mine) continue;
      found = true;
      EXPECT_DOUBLE_EQ(by_id[id]["measured_ms"].get<double>(), m["decode"][0]["ms_best"].get<double>()) << id;
    }
    EXPECT_TRUE(found) << id;
  }

  for (const char* b : {"0.5x", "0.8x"}) {
    const Json& base = by_id[std::string("arch_only-") + b]["architecture"];
    const Json& seq = by_id[std::string("seq_w8a16-") + b]["architecture"];
    const Json& mix = by_id[std::string("seq_mix-") + b]["architecture"];
    const Json& depth = by_id[std::string("depth_only-") + b]["architecture"];
    ASSERT_TRUE(base.is_object() && seq.is_object() && depth.is_object() && mix.is_object());
    EXPECT_EQ(base["hidden"], seq["hidden"]);
    EXPECT_EQ(base["depth"], seq["depth"]);
    EXPECT_EQ(depth["hidden"], 64);
    for (size_t l = 0; l < base["layers"].size(); ++l) {
      const Json &a = base["layers"][l], &q = seq["layers"][l], &d = depth["layers"][l];
      for (const char* k : {"kv_groups", "head_dim", "intermediate"}) EXPECT_EQ(a[k], q[k]) << b << " layer " << l;
      for (const char* s : {"qkv", "o", "gate_up", "down"}) {
        EXPECT_EQ(a["formats"][s], "bf16") << "the architecture-only search searched formats";
        EXPECT_EQ(q["formats"][s], "w8a16");
        EXPECT_EQ(d["formats"][s], "bf16");
      }
      EXPECT_EQ(d["intermediate"], 172);  // depth only: full widths
    }
  }
  // The looser budget keeps at least as many blocks for depth only.
  EXPECT_LE(by_id["depth_only-0.5x"]["architecture"]["depth"].get<int>(),
            by_id["depth_only-0.8x"]["architecture"]["depth"].get<int>());

  const Json headline = read_json_file((rd / "headline.json").string());
  ASSERT_TRUE(headline.contains("perplexity"));
  // A joint point the latency stage times more than 2 % over its budget is on no front; this tiny
  // study's models are timed in 3 rounds beside other tests, and on a loaded machine every joint
  // point can land there (seen once in a full ctest run beside another one).
  bool joint_measured = false;
  for (const Json& p : points) joint_measured |= p["method"] == "joint" && p["status"] == "measured";
  EXPECT_EQ(headline["perplexity"]["joint_front"].empty(), !joint_measured) << headline.dump();
  EXPECT_FALSE(headline["perplexity"]["sequential_front"].empty());
  const std::string md = slurp(rd / "pareto.md");
  EXPECT_NE(md.find("## Headline"), std::string::npos);
  EXPECT_NE(md.find("## Architectures side by side"), std::string::npos);
  EXPECT_NE(md.find("## Spread of the joint search over seeds"), std::string::npos);
  for (const char* c : {"pareto_ppl.png", "pareto_ppl.svg", "pareto_kl.png", "pareto_kl.svg"}) {
    EXPECT_GT(fs::file_size(rd / c), 1000u) << c;
  }
  EXPECT_EQ(slurp(rd / "pareto_ppl.png").substr(1, 3), "PNG");

  // A rerun does nothing but the report: every stage is recorded as done.
  const CmdResult again = run("pareto " + cfg);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.err.find("] search"), std::string::npos) << again.err;
  EXPECT_EQ(slurp(rd / "points.json"), jointnas::Json(points).dump(1) + "\n");
}

TEST(Pareto, BadConfigsAreClearErrors) {
  const fs::path root = scratch("pareto_bad");
  std::ofstream(root / "x.txt") << "Once upon a time there was a cat.\n";
  auto cfg = [&](const std::string& pareto) {
    const fs::path p = root / "c.yaml";
    std::ofstream(p) << "model: " << repo_path("models/stories260K/stories260K.bin") << "\n"
                     << "search_space: " << repo_path("configs/spaces/stories260k.yaml") << "\n"
                     << "run_dir: " << (root / "s").string() << "\n"
                     << "data: {calibration: x.txt, eval: x.txt}\n"
                     << "workload: {kind: decode, batch: 1, context: 64}\neval: {window: 257}\n"
                     << pareto;
    return p.string();
  };
  expect_error(run("pareto " + cfg("budget: {latency: 0.5x}\n")), 2, "needs a 'pareto' section");
  expect_error(run("pareto " + cfg("pareto: {budgets: [12ms]}\n")), 2, "must be a fraction of the dense model");
  expect_error(run("pareto " + cfg("pareto: {methods: [joint, magic]}\n")), 2, "'magic' is not one of joint, sequential, quant_only, depth_only");
  expect_error(run("pareto " + cfg("pareto: {budgets: [0.5x], seed_budgets: [0.7x]}\n")), 2, "is not one of pareto.budgets");
  expect_error(run("pareto " + cfg("pareto: {budgets: [0.5x], seeds: [1, 1]}\n")), 2, "'pareto.seeds' repeats a seed");
  expect_error(run("pareto " + cfg("pareto: {budgets: [0.5x, 0.50x]}\n")), 2, "repeats a budget");
  expect_error(run("pareto " + cfg("pareto: {budgets: [0.5x], quant_formats: [fp8_e4m3]}\n")), 2, "is not a format of");
}

}  // namespace
}  // namespace jointnas::testing::cli
