// Cost model (issue 4, acceptance 1): the expected cost at one-hot probabilities equals the
// discrete cost of the selected architecture, and its gradient passes a finite-difference check.
#include <cmath>
#include <random>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/profile/calibration.h"
#include "jointnas/profile/cost_space.h"
#include "jointnas/profile/expected_cost.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/workload.h"

namespace jointnas::profile {
namespace {

model::LlamaConfig base_config() {
  model::LlamaConfig c;
  c.vocab_size = 97;
  c.hidden_size = 128;
  c.intermediate_size = 192;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.tie_word_embeddings = true;
  return c;
}

CostSpace space() {
  CostSpace s;
  s.hidden = {64, 128};
  LayerSpace l;
  // Whole KV groups (3 query heads each) and a halved head size with its own RoPE base.
  l.attention = {{3, 1, 16, 0}, {6, 2, 16, 0}, {3, 1, 8, 100.0}, {6, 2, 8, 100.0}};
  l.intermediate = {64, 128, 192};
  l.formats_qkv = l.formats_o = {"bf16", "w8a8", "w4a16_g128"};
  l.formats_gate_up = l.formats_down = {"bf16", "fp8_e4m3", "w4a16_g128", "w8a16"};
  l.can_skip = true;
  s.layers.assign(3, l);
  return s;
}

// Every key the space needs, with arbitrary (seeded) latencies: the algebra must hold for any table.
// `cpu`: a table measured on the CPU (meta.device "cpu", its own keys).
LatencyTable synthetic_table(const model::LlamaConfig& c, const CostSpace& s, const Workload& w,
                             bool cpu = false) {
  LatencyTable t;
  if (cpu) t.meta = Json{{"device", "cpu"}};
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.01, 1.0);
  for (const std::string& k : required_keys(c, s, w, cpu)) t.set(k, {u(rng), 0, 0, 1});
  return t;
}

// One-hot probabilities of a selection.
ArchProbs one_hot(const CostSpace& sp, const Selection& s) {
  auto oh = [](size_t n, int64_t i) {
    at::Tensor t = at::zeros({static_cast<int64_t>(n)}, at::kDouble);
    t[i] = 1.0;
    return t;
  };
  ArchProbs p;
  p.hidden = oh(sp.hidden.size(), s.hidden);
  for (size_t l = 0; l < sp.layers.size(); ++l) {
    const LayerSpace& L = sp.layers[l];
    p.layers.push_back({oh(L.attention.size(), s.attention[l]), oh(L.intermediate.size(), s.intermediate[l]),
                        oh(L.formats_qkv.size(), s.qkv[l]), oh(L.formats_o.size(), s.o[l]),
                        oh(L.formats_gate_up.size(), s.gate_up[l]), oh(L.formats_down.size(), s.down[l]),
                        at::full({}, s.keep[l] ? 1.0 : 0.0, at::kDouble)});
  }
  return p;
}

TEST(CostModel, ExpectedAtOneHotEqualsDiscrete) {
  const model::LlamaConfig base = base_config();
  const CostSpace sp = space();
  std::mt19937_64 rng(1);
  for (const char* kind : {"decode", "prefill", "mix"}) {
    Workload w;
    w.kind = kind;
    w.batch = 2;
    w.context = 100;
    w.tokens = 33;
    w.decode_weight = 0.7;
    w.prefill_weight = 0.3;
    // mix: a CPU table (+ dequantized copies, no producer-quantized inputs), in both.
    LatencyTable t = synthetic_table(base, sp, w, std::string(kind) == "mix");
    if (std::string(kind) != "prefill") t.calibration[w.name()] = {1.3, 0.05, 0.2, 8};  // applied in both
    for (int trial = 0; trial < 25; ++trial) {
      const Selection s = random_selection(sp, rng, 0.25);
      auto [cfg, specs] = select(base, sp, s);
      const Cost d = predict(cfg, specs, t, w);
      const ExpectedCost e = expected_cost(base, sp, one_hot(sp, s), t, w);
      EXPECT_NEAR(e.latency_ms.item<double>(), d.latency_ms, 1e-12 * d.latency_ms) << kind;
      EXPECT_DOUBLE_EQ(e.weight_bytes.item<double>(), static_cast<double>(d.weight_bytes)) << kind;
      EXPECT_DOUBLE_EQ(e.params.item<double>(), static_cast<double>(d.params)) << kind;
      EXPECT_DOUBLE_EQ(e.kv_cache_bytes.item<double>(), static_cast<double>(d.kv_cache_bytes)) << kind;
    }
  }
}

// d E[latency] / d logits by autograd vs central differences (double, softmax parameterisation).
TEST(CostModel, ExpectedCostGradientMatchesFiniteDifferences) {
  const model::LlamaConfig base = base_config();
  const CostSpace sp = space();
  Workload w;
  w.kind = "mix";
  w.decode_weight = 0.5;
  w.prefill_weight = 0.5;
  w.tokens = 16;
  const LatencyTable t = synthetic_table(base, sp, w);
  at::manual_seed(0);
  std::vector<at::Tensor> logits;
  auto make = [&](size_t n) {
    logits.push_back(at::randn({static_cast<int64_t>(n)}, at::kDouble).set_requires_grad(true));
    return logits.back();
  };
  const at::Tensor lh = make(sp.hidden.size());
  std::vector<std::array<at::Tensor, 7>> ll;
  for (const LayerSpace& L : sp.layers) {
    ll.push_back({make(L.attention.size()), make(L.intermediate.size()), make(L.formats_qkv.size()),
                  make(L.formats_o.size()), make(L.formats_gate_up.size()), make(L.formats_down.size()),
                  make(1)});
  }
  auto f = [&]() {
    ArchProbs p;
    p.hidden = at::softmax(lh, 0);
    for (const auto& a : ll) {
      p.layers.push_back({at::softmax(a[0], 0), at::softmax(a[1], 0), at::softmax(a[2], 0),
                          at::softmax(a[3], 0), at::softmax(a[4], 0), at::softmax(a[5], 0),
                          at::sigmoid(a[6]).reshape({})});
    }
    const ExpectedCost e = expected_cost(base, sp, p, t, w);
    return e.latency_ms + 1e-9 * e.weight_bytes;  // both terms carry gradients
  };
  f().backward();
  const double eps = 1e-6;
  double worst = 0;
  for (at::Tensor& x : logits) {
    for (int64_t i = 0; i < x.size(0); ++i) {
      double plus, minus;
      {
        c10::AutoGradMode no_grad(false);
        const double v = x[i].item<double>();
        x[i].fill_(v + eps);
        plus = f().item<double>();
        x[i].fill_(v - eps);
        minus = f().item<double>();
        x[i].fill_(v);
      }
      const double fd = (plus - minus) / (2 * eps), ad = x.grad()[i].item<double>();
      // Central differences: truncation O(eps^2) ~ 1e-12 and cancellation ~ 1e-16 * |f| / eps.
      EXPECT_NEAR(ad, fd, 1e-7 * std::max(1.0, std::abs(fd)));
      worst = std::max(worst, std::abs(ad - fd));
    }
  }
  RecordProperty("worst_abs_grad_error", std::to_string(worst));
}

TEST(CostModel, MissingEntryNamesTheKeyAndTablesRoundTrip) {
  const model::LlamaConfig base = base_config();
  const CostSpace sp = space();
  Workload w;
  LatencyTable t = synthetic_table(base, sp, w);
  t.meta = Json{{"device", "test"}};
  const LatencyTable back = LatencyTable::from_json(t.to_json(), "mem");
  EXPECT_EQ(back.entries().size(), t.entries().size());
  EXPECT_EQ(back.meta["device"], "test");
  Selection s;
  std::mt19937_64 rng(3);
  s = random_selection(sp, rng);
  auto [cfg, specs] = select(base, sp, s);
  EXPECT_DOUBLE_EQ(predict(cfg, specs, back, w).latency_ms, predict(cfg, specs, t, w).latency_ms);
  Workload other = w;
  other.context = 4096;  // a workload the table was not measured for
  try {
    predict(cfg, specs, t, other);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("attention/b1/q1/c4097"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LatencyTable::from_json(Json{{"format", "other"}}, "x"), IoError);
  EXPECT_THROW(Workload::from_json(Json{{"kind", "train"}}, "w"), ConfigError);
  EXPECT_EQ(Workload::from_json(Json{{"kind", "prefill"}, {"tokens", 2048}}, "w").name(), "prefill_b1_s2048");
}

TEST(CostModel, CalibrationFitRecoversALinearBias) {
  // measured = 1.25 pred + 0.1 blocks + 0.3, exactly: the fit must return those numbers.
  std::vector<std::array<double, 3>> runs;
  for (double pred : {1.0, 2.5, 4.0, 7.0}) {
    for (double blocks : {2.0, 5.0}) runs.push_back({pred, blocks, 1.25 * pred + 0.1 * blocks + 0.3});
  }
  const LatencyTable::Calibration c = fit_calibration(runs);
  EXPECT_NEAR(c.scale, 1.25, 1e-9);
  EXPECT_NEAR(c.per_block_ms, 0.1, 1e-9);
  EXPECT_NEAR(c.constant_ms, 0.3, 1e-9);
  EXPECT_EQ(c.outliers, 0);
  EXPECT_THROW(fit_calibration({{1, 1, 1}}), ConfigError);
  EXPECT_THROW(fit_calibration({{1, 1, 1}, {2, 2, -1}, {3, 3, 3}}), ConfigError);
  LatencyTable t;
  t.calibration["decode_b1_c512"] = c;
  EXPECT_NEAR(LatencyTable::from_json(t.to_json(), "m").calibration.at("decode_b1_c512").per_block_ms, 0.1, 1e-12);
}

// Runs of large architectures only, fitted exactly by 3.4 x sum - 0.65 ms (a loaded VM, 2026-12-06):
// that fit predicts a negative latency for every small architecture, so it must not be chosen.
TEST(CostModel, CalibrationNeverPredictsANegativeLatencyForOneBlock) {
  std::vector<std::array<double, 3>> runs;
  for (double pred : {0.30, 0.34, 0.38, 0.42, 0.46, 0.50}) runs.push_back({pred, 5, 3.4 * pred - 0.65});
  const LatencyTable::Calibration c = fit_calibration(runs);
  EXPECT_GT(c.scale, 0);
  EXPECT_GE(c.per_block_ms + c.constant_ms, 0) << c.scale << " " << c.per_block_ms << " " << c.constant_ms;
}

// Eight stories260K sub-architectures measured on the 2-core development machine (seed 1 of
// `jointnas profile --calibrate 8`, 2026-11-27): block count moves with the op sum and run 1 hit a
// burst of load (1.37 ms where its neighbours read 0.53-0.66). The unguarded three-term fit
// returned scale -3.9 and failed the README's command. The guarded fit must give a usable model:
// positive scale, run 1 set aside, and the other runs predicted within their own spread (the
// measurements of similar architectures differ by up to 25 %, so 25 % bounds the error).
TEST(CostModel, CalibrationFitSurvivesNoisyCollinearRuns) {
  const std::vector<std::array<double, 3>> runs = {
      {0.4491, 5, 1.3666}, {0.4518, 5, 0.6436}, {0.4361, 5, 0.6582}, {0.4664, 5, 0.6357},
      {0.4754, 5, 0.6404}, {0.3687, 4, 0.5312}, {0.4068, 4, 0.5356}, {0.2806, 3, 0.5401}};
  const LatencyTable::Calibration c = fit_calibration(runs);
  EXPECT_GT(c.scale, 0);
  EXPECT_EQ(c.outliers, 1);
  EXPECT_EQ(c.runs, 7);
  for (size_t i = 1; i < runs.size(); ++i) {
    const double pred = c.scale * runs[i][0] + c.per_block_ms * runs[i][1] + c.constant_ms;
    EXPECT_LT(std::abs(pred - runs[i][2]) / runs[i][2], 0.25) << "run " << i;
  }
}

// Synthetic: measured = 1.1 pred + 0.05 blocks + 0.2 with +-3 % multiplicative noise, block counts
// 2..5 nearly proportional to the prediction, plus one run doubled. Over 200 noise draws the fit
// must stay usable (scale > 0, calibrated prediction positive even at one block) and, inside the
// calibrated range, err by at most 3x the noise (9 %) on fresh noiseless architectures. The same
// check on the plain three-term least squares (the old fit) must fail on some draws, or this
// test would not be testing anything.
TEST(CostModel, CalibrationFitIsStableUnderNoise) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> noise(-0.03, 0.03), jitter(-0.05, 0.05);
  auto truth = [](double pred, double blocks) { return 1.1 * pred + 0.05 * blocks + 0.2; };
  auto worst_error = [&](double scale, double per_block, double constant) {
    double worst = 0;
    for (double blocks : {2.0, 3.5, 5.0}) {
      for (double per : {0.25, 0.35}) {
        const double pred = blocks * per;
        const double got = scale * pred + per_block * blocks + constant;
        worst = std::max(worst, got > 0 ? std::abs(got - truth(pred, blocks)) / truth(pred, blocks) : 1e9);
      }
    }
    return scale > 0 ? worst : 1e9;
  };
  int plain_failures = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::array<double, 3>> runs;
    for (int i = 0; i < 8; ++i) {
      const double blocks = 2 + i % 4;
      const double pred = blocks * (0.3 + jitter(rng));
      runs.push_back({pred, blocks, truth(pred, blocks) * (1 + noise(rng))});
    }
    runs[3][2] *= 2;
    const LatencyTable::Calibration c = fit_calibration(runs);
    ASSERT_GT(c.scale, 0) << "trial " << trial;
    ASSERT_GT(c.scale * 0.25 + c.per_block_ms + c.constant_ms, 0) << "trial " << trial;
    ASSERT_LT(worst_error(c.scale, c.per_block_ms, c.constant_ms), 0.09)
        << "trial " << trial << ": " << c.scale << " " << c.per_block_ms << " " << c.constant_ms;
    at::Tensor A = at::empty({8, 3}, at::kDouble), b = at::empty({8, 1}, at::kDouble);
    for (int i = 0; i < 8; ++i) {
      A[i][0] = runs[i][0];
      A[i][1] = runs[i][1];
      A[i][2] = 1.0;
      b[i][0] = runs[i][2];
    }
    const at::Tensor x = std::get<0>(at::linalg_lstsq(A, b));
    if (worst_error(x[0][0].item<double>(), x[1][0].item<double>(), x[2][0].item<double>()) >= 0.09) ++plain_failures;
  }
  EXPECT_GT(plain_failures, 20);
}

// KV cache and weight bytes follow the formats and the kept layers.
TEST(CostModel, MemoryTerms) {
  model::LlamaConfig c = base_config();
  std::vector<model::LayerSpec> specs = model::dense_layer_specs(c);
  Workload w;
  w.context = 511;
  const CostSpace sp = space();
  const LatencyTable t = synthetic_table(c, sp, w);
  const Cost dense = predict(c, specs, t, w);
  // 3 layers x K and V x 512 positions x 2 kv heads x 16 dims x 2 bytes.
  EXPECT_EQ(dense.kv_cache_bytes, 3 * 2 * 512 * 2 * 16 * 2);
  specs[1].skip = true;
  EXPECT_EQ(predict(c, specs, t, w).kv_cache_bytes, 2 * 2 * 512 * 2 * 16 * 2);
  specs[1].skip = false;
  for (auto& s : specs) s.format_gate_up = "w4a16_g128";
  const Cost q = predict(c, specs, t, w);
  // gate_up [384 x 128] per layer: bf16 2 B/weight -> 0.5 B + (bf16 scale + zero) per 128.
  EXPECT_EQ(dense.weight_bytes - q.weight_bytes, 3 * (384 * 128 * 2 - (384 * 64 + 384 * 3)));
  EXPECT_EQ(q.params, dense.params);
  // A table measured on the CPU: the runtime also holds a dequantized copy (2 B/weight here) of
  // each weight-only linear, so w4a16 costs more memory than bf16 there. Formats with quantized
  // activations keep no copy.
  const LatencyTable cpu = synthetic_table(c, sp, w, /*cpu=*/true);
  EXPECT_EQ(predict(c, specs, cpu, w).weight_bytes - q.weight_bytes, 3 * 384 * 128 * 2);
  EXPECT_EQ(predict(c, model::dense_layer_specs(c), cpu, w).weight_bytes, dense.weight_bytes);
  for (auto& s : specs) s.format_gate_up = "fp8_e4m3";
  EXPECT_EQ(predict(c, specs, cpu, w).weight_bytes, predict(c, specs, t, w).weight_bytes);
}

// A w8a8 / fp8 linear takes its input quantized by its producer on CUDA (LlamaModel::block): its
// own key ("/qx", timed from the codes) on a CUDA table, for every slot; the plain key on a CPU
// table.
TEST(CostModel, ProducerQuantizedLinearsHaveTheirOwnKeys) {
  model::LlamaConfig c = base_config();
  Workload w;
  const CostSpace sp = space();
  int qx = 0;
  for (const std::string& k : required_keys(c, sp, w)) {
    if (k.size() < 3 || k.compare(k.size() - 3, 3, "/qx") != 0) continue;
    ++qx;
    // w8a8 reaches q/k/v and o, fp8 gate/up and down.
    EXPECT_TRUE(k.find("/w8a8/") != std::string::npos || k.find("/fp8_e4m3/") != std::string::npos) << k;
  }
  EXPECT_GT(qx, 0);
  for (const std::string& k : required_keys(c, sp, w, /*cpu_table=*/true)) {
    EXPECT_EQ(k.find("/qx"), std::string::npos) << k;
  }
  std::vector<model::LayerSpec> specs = model::dense_layer_specs(c);
  LatencyTable t = synthetic_table(c, sp, w);
  const double dense = predict(c, specs, t, w).latency_ms;
  // One fp8 down projection: its latency is the /qx entry, and the plain entry is not read.
  specs[1].format_down = "fp8_e4m3";
  const std::string plain = LatencyTable::linear_key(1, c.intermediate_size, c.hidden_size, "fp8_e4m3");
  const std::string fed = LatencyTable::linear_key(1, c.intermediate_size, c.hidden_size, "fp8_e4m3", true);
  EXPECT_EQ(fed, plain + "/qx");
  t.set(plain, {100.0, 0, 0, 1});
  t.set(fed, {0.25, 0, 0, 1});
  const double bf16_down = t.ms(LatencyTable::linear_key(1, c.intermediate_size, c.hidden_size, "bf16"));
  EXPECT_NEAR(predict(c, specs, t, w).latency_ms - dense, 0.25 - bf16_down, 1e-12);
  // o_proj in w8a8 (its codes gathered from the attention output): the /qx key too.
  specs[1].format_down = "bf16";
  specs[1].format_o = "w8a8";
  const int64_t q = c.num_attention_heads * c.head_dim;
  t.set(LatencyTable::linear_key(1, q, c.hidden_size, "w8a8"), {50.0, 0, 0, 1});
  t.set(LatencyTable::linear_key(1, q, c.hidden_size, "w8a8", true), {0.5, 0, 0, 1});
  const double bf16_o = t.ms(LatencyTable::linear_key(1, q, c.hidden_size, "bf16"));
  EXPECT_NEAR(predict(c, specs, t, w).latency_ms - dense, 0.5 - bf16_o, 1e-12);
  // On a CPU table the plain key.
  LatencyTable cpu = t;
  cpu.meta = Json{{"device", "cpu"}};
  EXPECT_NEAR(predict(c, specs, cpu, w).latency_ms - dense, 50.0 - bf16_o, 1e-12);
}

// The activation term replays the runtime's allocations (predict.cpp, AllocWalk). Derived by
// hand from LlamaModel::block: at the SiLU product of a bf16 block the live tensors are the block
// input x, the second norm's h, qkv, the roped q, the attention output, out = x + o_proj(...), the
// gate_up output [2I] and the product [I], plus int64 ids and positions.
TEST(CostModel, ActivationPeakFollowsTheRuntimesAllocations) {
  model::LlamaConfig c = base_config();
  std::vector<model::LayerSpec> specs = model::dense_layer_specs(c);
  specs[1].skip = specs[2].skip = true;
  Workload w;
  w.kind = "prefill";
  w.tokens = 32;
  LatencyTable t = synthetic_table(c, space(), w);
  const int64_t R = 32, H = 128, q = 6 * 16, kv = 2 * 16, I = 192;
  t.set(LatencyTable::linear_key(R, H, 2 * I, "w8a8", true), {0.5, 0, 0, 1});  // not in space()
  LatencyTable cpu = t;
  cpu.meta = Json{{"device", "cpu"}};
  cpu.set(LatencyTable::linear_key(R, H, 2 * I, "w8a8"), {0.5, 0, 0, 1});
  const Cost dense = predict(c, specs, t, w);
  EXPECT_EQ(dense.activation_bytes, 2 * R * 8 + R * 2 * (3 * H + 3 * q + 2 * kv + 3 * I));
  EXPECT_EQ(predict(c, specs, cpu, w).activation_bytes, dense.activation_bytes);
  // w8a8 gate_up, quantizing its own input (the CPU runtime): while its bf16 output is written,
  // x's int8 codes [R, H] and fp32 scales [R] and _int_mm's int32 accumulator [R, 2I] are live;
  // they replace the SiLU product [R, I] bf16 as the difference at the peak.
  specs[0].format_gate_up = "w8a8";
  EXPECT_EQ(predict(c, specs, cpu, w).activation_bytes - dense.activation_bytes,
            R * H + R * 4 + R * 2 * I * 4 - R * I * 2);
  // On CUDA the second RMSNorm writes those codes and scales itself instead of its bf16 output
  // [R, H]; the accumulator still replaces the SiLU product.
  EXPECT_EQ(predict(c, specs, t, w).activation_bytes - dense.activation_bytes,
            R * 4 - R * H + R * 2 * I * 4 - R * I * 2);
  // The memory constant of a calibration is carried through the table file and into the peak.
  LatencyTable tc = t;
  tc.calibration[w.name()].memory_bytes = 12345;
  const LatencyTable back = LatencyTable::from_json(tc.to_json(), "mem");
  specs[0].format_gate_up = "bf16";
  const Cost cal = predict(c, specs, back, w);
  EXPECT_EQ(cal.runtime_bytes, 12345);
  EXPECT_EQ(cal.peak_bytes() - dense.peak_bytes(), 12345);
  // A table is untrusted input: a constant that would overflow the peak is rejected.
  Json bad = tc.to_json();
  bad["calibration"][w.name()]["memory_bytes"] = int64_t{1} << 62;
  EXPECT_THROW(LatencyTable::from_json(bad, "bad"), IoError);
}

}  // namespace
}  // namespace jointnas::profile
