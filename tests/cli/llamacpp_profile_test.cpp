// Issue 25: the latency table of the llama.cpp target (`profile --runtime llama.cpp`), through the
// binary, on stories260K's shapes. Every key the space needs is measured with ggml's CPU kernels
// (finite, positive, inside its own 10th-90th percentile band), the dense f16 model's keys are
// there too (the reference of budgets), calibration and validation export random architectures
// to GGUF and time them through libllama against the dense f16 model in the same rounds, a second
// profile reuses the table, and what llama.cpp cannot run is refused before anything is measured.
// No timing claim: the accuracy of the predictions is a benchmark (docs/benchmarks.md). Skips
// where llama.cpp is absent.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "llamacpp_test_util.h"

namespace jointnas::testing::cli {
namespace {

// stories260K's config.json (an HF directory written by `quantize`, which reads the llama2.c .bin).
std::string tiny_config(const fs::path& d) {
  return (tiny_f16_dir(d) / "config.json").string();
}

// stories260K (hidden 64, MLP 172, 8 heads / 4 KV heads of 8): hidden widths that are whole q8_0
// blocks (32 values) on the inputs of qkv and gate_up; o and down stay f16 (down's input can be
// the model's own MLP width, 172).
std::string space_file(const fs::path& d, const std::string& formats) {
  const fs::path p = d / "space.yaml";
  std::ofstream(p) << "search_space:\n  hidden: [32, 64]\n  multiple_of: 32\n  depth: {min: 1}\n  layers:\n"
                   << "    heads: [2, 4]\n    head_dim: [8]\n    intermediate: [64, 128]\n"
                   << "    formats_o: [f16]\n    formats_down: [f16]\n  formats: " << formats << "\n";
  return p.string();
}

TEST(LlamaCppProfile, MeasuresEveryKeyAndValidatesOnGgufExports) {
  REQUIRE_LLAMA_CPP();
  const fs::path d = scratch("llamacpp_profile");
  const std::string cfg = tiny_config(d);
  const std::string table = (d / "table.json").string();
  const std::string cmd = "profile --runtime llama.cpp --config " + cfg + " --space " + space_file(d, "[f16, q8_0]") +
                          " --threads 2 --context 64 --repeats 3 --warmup 1 --seed 3 --out " + table;
  const CmdResult r = run(cmd + " --calibrate 3 --validate 2 --rounds 2 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = parse_json(r.out, "stdout");
  EXPECT_EQ(j["runtime"], "llama.cpp");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["entries"], j["required"]);
  const Json t = read_json_file(table);
  EXPECT_EQ(t["meta"]["runtime"], "llama.cpp");
  EXPECT_EQ(t["meta"]["threads"], 2);
  size_t linears_f16_dense = 0;
  for (const auto& [key, e] : t["entries"].items()) {
    const double ms = e["ms"].get<double>();
    EXPECT_TRUE(std::isfinite(ms) && ms > 0) << key;
    EXPECT_LE(e["p10"].get<double>(), ms) << key;
    EXPECT_GE(e["p90"].get<double>(), ms) << key;
    EXPECT_EQ(key.find("/qx"), std::string::npos) << key;  // llama.cpp quantizes x inside the op
    // The dense model's linears in f16 at its own widths: qkv 64 -> (8 + 2 x 4) x 8, down 172 -> 64.
    if (key == "linear/m1/k64/n128/f16" || key == "linear/m1/k172/n64/f16") ++linears_f16_dense;
  }
  EXPECT_EQ(linears_f16_dense, 2u) << "the dense f16 reference is not in the table";
  ASSERT_TRUE(j.contains("calibration")) << r.out;
  EXPECT_EQ(j["calibration"]["runs"].get<int>() + j["calibration"]["outliers"].get<int>(), 3);
  ASSERT_TRUE(j.contains("validation")) << r.out;
  const Json& v = j["validation"];
  EXPECT_EQ(v["architectures"], 2);
  EXPECT_TRUE(v["calibrated"].get<bool>());
  ASSERT_EQ(v["rows"].size(), 2u);
  for (const Json& row : v["rows"]) {
    for (const char* k : {"predicted_ms", "measured_ms", "predicted_ratio", "measured_ratio"}) {
      const double x = row[k].get<double>();
      EXPECT_TRUE(std::isfinite(x) && x > 0) << k << " " << row.dump();
    }
    EXPECT_LE(row["measured_ratio_min"].get<double>(), row["measured_ratio"].get<double>());
    EXPECT_GE(row["measured_ratio_max"].get<double>(), row["measured_ratio"].get<double>());
  }
  EXPECT_FALSE(fs::exists(table + ".gguf-timing")) << "the timing GGUFs were left behind";

  // The same conditions again: nothing left to measure.
  const CmdResult again = run(cmd);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("0 entries to measure"), std::string::npos) << again.err;
}

TEST(LlamaCppProfile, RefusesWhatLlamaCppDoesNotRunBeforeMeasuring) {
  REQUIRE_LLAMA_CPP();
  const fs::path d = scratch("llamacpp_profile_refuse");
  const std::string cfg = tiny_config(d);
  const std::string table = (d / "table.json").string();
  const std::string base = "profile --runtime llama.cpp --config " + cfg + " --threads 1 --out " + table;
  expect_error(run(base + " --space " + space_file(d, "[f16, w8a16]")), 2, "which llama.cpp does not run");
  expect_error(run(base + " --space " + space_file(d, "[f16]") + " --batch 2"), 2, "batch 1");
  EXPECT_FALSE(fs::exists(table));
}

}  // namespace
}  // namespace jointnas::testing::cli
