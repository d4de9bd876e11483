// Calibration and validation sampling (profile/calibrate.h), called directly on a tiny model on
// the CPU with few repeats: the logic (which architectures, their predictions, the fit's inputs,
// the summary), not the timings.
#include <array>
#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/profile/calibrate.h"
#include "jointnas/profile/calibration.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/required_keys.h"

namespace jointnas::profile {
namespace {

model::LlamaConfig tiny_config() {
  model::LlamaConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  return c;
}

CostSpace tiny_space() {
  CostSpace s;
  s.hidden = {16, 32};
  LayerSpace l;
  l.attention = {{2, 1, 8, 0}, {4, 2, 8, 0}};
  l.intermediate = {24, 48};
  l.formats_qkv = l.formats_o = l.formats_gate_up = l.formats_down = {"bf16", "w8a16"};
  l.can_skip = true;
  s.layers.assign(2, l);
  return s;
}

Workload decode_workload() {
  Workload w;
  w.context = 8;
  return w;
}

// Every key the space needs at a distinct, seeded latency, measured "on the CPU" (its keys).
LatencyTable synthetic_table(const model::LlamaConfig& c, const CostSpace& s, const Workload& w) {
  LatencyTable t;
  t.meta = Json{{"device", "cpu"}};
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.01, 0.1);
  for (const std::string& k : required_keys(c, s, w, true)) t.set(k, {u(rng), 0, 0, 1});
  return t;
}

// fp32 on the CPU; one warm-up and two timed calls, no time floors: a test of the logic.
SampleOptions quick(int rounds = 1) {
  SampleOptions o;
  o.runtime = {c10::Device(c10::kCPU), c10::kFloat};
  o.plan.warmup = 1;
  o.plan.repeats = 2;
  o.rounds = rounds;
  return o;
}

TEST(Calibrate, SampledArchitecturesArePredictedAndMeasured) {
  const model::LlamaConfig base = tiny_config();
  const CostSpace sp = tiny_space();
  const Workload w = decode_workload();
  const LatencyTable table = synthetic_table(base, sp, w);
  for (int rounds : {1, 2}) {
    const int n = 3;
    const auto archs = measure_random_architectures(base, sp, table, w, n, 11, true, quick(rounds), "test");
    ASSERT_EQ(archs.size(), static_cast<size_t>(n));
    // The same selections as the seeded draw, with the spread drop probability 0, 0.3, 0.6.
    std::mt19937_64 rng(11);
    for (int i = 0; i < n; ++i) {
      const auto [c, specs] = select(base, sp, random_selection(sp, rng, 0.6 * i / (n - 1)));
      const Cost cost = predict(c, specs, table, w, /*fp32*/ 4);
      const MeasuredArch& r = archs[static_cast<size_t>(i)];
      EXPECT_EQ(describe_layers(r.specs), describe_layers(specs));
      EXPECT_EQ(r.hidden, c.hidden_size);
      int64_t kept = 0;
      for (const auto& l : specs) kept += l.skip ? 0 : 1;
      EXPECT_EQ(r.kept, kept);
      EXPECT_DOUBLE_EQ(r.predicted_ms, cost.latency_ms);
      EXPECT_EQ(r.predicted_peak_bytes, cost.peak_bytes());
      EXPECT_TRUE(std::isfinite(r.measured_ms) && r.measured_ms > 0) << r.measured_ms;
      EXPECT_EQ(r.measured_peak_bytes, -1);  // the CPU has no allocator statistics
    }
  }
  EXPECT_THROW(measure_random_architectures(base, sp, table, w, 0, 11, false, quick(), "test"), ConfigError);
}

TEST(Calibrate, FitsUncalibratedPredictionsAndStoresTheCalibration) {
  const model::LlamaConfig base = tiny_config();
  const CostSpace sp = tiny_space();
  const Workload w = decode_workload();
  LatencyTable table = synthetic_table(base, sp, w);
  // A stale calibration for this workload that would make every prediction negative (which the
  // fit rejects): calibrate must predict without it. Another workload's calibration stays.
  table.calibration[w.name()].scale = -1.0;
  table.calibration["prefill_b1_s16"].constant_ms = 7.0;
  const LatencyTable::Calibration cal = calibrate(base, sp, table, w, 4, 3, quick());
  EXPECT_EQ(cal.runs + cal.outliers, 4);
  EXPECT_GT(cal.scale, 0);
  ASSERT_NE(table.calibration_for(w), nullptr);
  EXPECT_EQ(table.calibration_for(w)->to_json(), cal.to_json());
  EXPECT_EQ(table.calibration.at("prefill_b1_s16").constant_ms, 7.0);
  // The fit's minimum run count is checked before anything is built or timed.
  EXPECT_THROW(calibrate(base, sp, table, w, 2, 3, quick()), ConfigError);
}

TEST(Calibrate, CalibrationFromRunsIsTheFitPlusTheMedianMemoryResidual) {
  std::vector<MeasuredArch> runs;
  std::vector<std::array<double, 3>> triples;
  const int64_t residuals[] = {300, -50, 100, 0};  // measured minus predicted peak
  for (int i = 0; i < 6; ++i) {
    MeasuredArch r;
    r.predicted_ms = 1.0 + i;
    r.kept = 2 + i % 3;
    r.measured_ms = 1.25 * r.predicted_ms + 0.1 * static_cast<double>(r.kept) + 0.3;
    r.predicted_peak_bytes = 1000 * (i + 1);
    // Runs 0..3 measured a peak; 4 and 5 did not (-1) and must not count.
    r.measured_peak_bytes = i < 4 ? r.predicted_peak_bytes + residuals[i] : -1;
    triples.push_back({r.predicted_ms, static_cast<double>(r.kept), r.measured_ms});
    runs.push_back(r);
  }
  const LatencyTable::Calibration cal = calibration_from(runs, "decode_b1_c8");
  LatencyTable::Calibration expected = fit_calibration(triples);
  expected.memory_bytes = 100;  // sorted {-50, 0, 100, 300}: the upper median
  EXPECT_EQ(cal.to_json(), expected.to_json());
  for (MeasuredArch& r : runs) r.measured_peak_bytes = -1;
  EXPECT_EQ(calibration_from(runs, "decode_b1_c8").memory_bytes, 0);
}

TEST(Calibrate, ValidationSummaryAndRows) {
  // |errors| 0.1, 0.4, 0.2, 0.3 (signs mixed); peaks measured on two of them, errors 0.5 and 0.25.
  std::vector<MeasuredArch> archs(4);
  const double pred[] = {1.1, 0.6, 2.4, 1.3}, meas[] = {1.0, 1.0, 2.0, 1.0};
  for (size_t i = 0; i < 4; ++i) {
    archs[i].predicted_ms = pred[i];
    archs[i].measured_ms = meas[i];
    archs[i].hidden = 32;
    archs[i].kept = 2;
    archs[i].predicted_peak_bytes = 1500;
  }
  archs[1].measured_peak_bytes = 1000;  // +0.5
  archs[3].measured_peak_bytes = 2000;  // -0.25
  model::LayerSpec kept_layer, skipped;
  kept_layer.num_attention_heads = 4;
  kept_layer.head_dim = 8;
  kept_layer.intermediate_size = 48;
  kept_layer.format_qkv = kept_layer.format_o = kept_layer.format_down = "bf16";
  kept_layer.format_gate_up = "w8a16";
  skipped.skip = true;
  archs[0].specs = {kept_layer, skipped};
  const Validation v = summarize_validation(archs, true);
  EXPECT_NEAR(v.median_abs_rel_error, 0.3, 1e-12);  // sorted 0.1 0.2 0.3 0.4: the upper median
  EXPECT_NEAR(v.max_abs_rel_error, 0.4, 1e-12);
  ASSERT_TRUE(v.peak_median_abs_rel_error.has_value());
  EXPECT_NEAR(*v.peak_median_abs_rel_error, 0.5, 1e-12);
  EXPECT_NEAR(*v.peak_max_abs_rel_error, 0.5, 1e-12);
  const Json j = v.to_json();
  EXPECT_EQ(j["architectures"], 4);
  EXPECT_EQ(j["calibrated"], true);
  ASSERT_EQ(j["rows"].size(), 4u);
  EXPECT_EQ(j["rows"][0]["layers"], "h4x8/i48/bf16,bf16,w8a16,bf16 - ");
  EXPECT_NEAR(j["rows"][1]["rel_error"].get<double>(), -0.4, 1e-12);
  EXPECT_FALSE(j["rows"][0].contains("measured_peak_bytes"));
  EXPECT_EQ(j["rows"][1]["measured_peak_bytes"], 1000);
  EXPECT_NEAR(j["rows"][3]["peak_rel_error"].get<double>(), -0.25, 1e-12);
  EXPECT_NEAR(j["peak_memory_median_abs_rel_error"].get<double>(), 0.5, 1e-12);
  for (MeasuredArch& a : archs) a.measured_peak_bytes = -1;
  const Json no_peaks = summarize_validation(archs, false).to_json();
  EXPECT_FALSE(no_peaks.contains("peak_memory_median_abs_rel_error"));
  EXPECT_EQ(no_peaks["calibrated"], false);
  EXPECT_THROW(summarize_validation({}, false), ConfigError);
}

TEST(Calibrate, ValidateUsesTheTablesCalibration) {
  const model::LlamaConfig base = tiny_config();
  const CostSpace sp = tiny_space();
  const Workload w = decode_workload();
  LatencyTable table = synthetic_table(base, sp, w);
  EXPECT_FALSE(validate(base, sp, table, w, 1, 0, quick()).calibrated);
  table.calibration[w.name()] = {2.0, 0.01, 0.5, 4, 0, 0};
  const Validation v = validate(base, sp, table, w, 2, 0, quick());
  EXPECT_TRUE(v.calibrated);
  ASSERT_EQ(v.archs.size(), 2u);
  // Drop probability 0.2 and the seed itself: the draw validate() makes.
  std::mt19937_64 rng(0);
  for (const MeasuredArch& r : v.archs) {
    const auto [c, specs] = select(base, sp, random_selection(sp, rng, 0.2));
    EXPECT_EQ(describe_layers(r.specs), describe_layers(specs));
    EXPECT_DOUBLE_EQ(r.predicted_ms, predict(c, specs, table, w, 4).latency_ms);
  }
  EXPECT_THROW(validate(base, sp, table, w, 0, 0, quick()), ConfigError);
}

}  // namespace
}  // namespace jointnas::profile
