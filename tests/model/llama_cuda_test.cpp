// GPU runtime checks (label `cuda`; built with JNAS_WITH_CUDA, skipped when no device is present).
// bf16 logits differ from fp32 transformers by ~1e-2 relative, so the bar is argmax agreement
// >= 99% (issue 2); CUDA-graph decode must reproduce the eager decode step of the same dtype.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/eval/perplexity.h"
#include "jointnas/kernels/launch.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/cuda_graph_decoder.h"
#include "jointnas/model/generate.h"
#include "jointnas/model/llama.h"
#include "jointnas/model/safetensors.h"
#include "tensor_assert.h"

using namespace jointnas;
using namespace jointnas::model;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;

namespace {
RuntimeOptions cuda_opts(at::ScalarType dt) {
  RuntimeOptions o;
  o.device = c10::Device(c10::kCUDA, 0);
  o.dtype = dt;
  return o;
}
#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"

// Llama-3.1-8B's shapes with `layers` blocks and a 4096-token vocabulary: fast, still GQA + llama3
// RoPE.
LlamaConfig small_8b(int64_t layers) {
  LlamaConfig c = LlamaConfig::from_file(repo_path("configs/llama-3.1-8b.json"));
  c.num_hidden_layers = layers;
  c.vocab_size = 4096;
  return c;
}
}  // namespace

TEST(LlamaCuda, Ref17mBf16ArgmaxAgrees) {
  REQUIRE_CUDA();
  // Reference: our fp32 runtime on the same GPU, first checked against the transformers golden
  // logits (1e-4). The golden's 128 positions are too few for a 99% bar (one flip = 0.8%), so the
  // agreement is measured on the first 4 x 1024 tokens of the wiki.test.raw stream (MANIFEST
  // protocol), the positions scripts/bf16_agreement.py scores with transformers for comparison.
  const std::string dir = shared_path("models/ref-17m");
  const std::string text = shared_path("data/text/wikitext2/wiki.test.raw");
  JNAS_REQUIRE_FILE(dir + "/golden_logits.safetensors");
  JNAS_REQUIRE_FILE(text);
  auto f = SafetensorsFile::open(dir + "/golden_logits.safetensors");
  at::Tensor ids = tensor_from_entry(f, *f->find("input_ids")).clone();
  at::Tensor golden = tensor_from_entry(f, *f->find("logits")).clone();
  Checkpoint ck = load_checkpoint(dir);
  LlamaModel fp32 = LlamaModel::from_checkpoint(ck, cuda_opts(at::kFloat));
  LlamaModel bf16 = LlamaModel::from_checkpoint(ck, cuda_opts(at::kBFloat16));
  JNAS_EXPECT_CLOSE(fp32.forward(ids).cpu(), golden, 1e-4, 0.0);
  auto tok = tok::load_tokenizer(dir);
  eval::PplProtocol p;
  auto stream = eval::build_stream(eval::split_documents(read_text_file(text), p.documents), *tok, p, 1, 2);
  at::Tensor x = at::tensor(std::vector<int64_t>(stream.begin(), stream.begin() + 4 * 1024), at::kLong)
                     .view({4, 1024});
  at::Tensor agree = bf16.forward(x).argmax(-1).eq(fp32.forward(x).argmax(-1)).cpu();
  const double frac = agree.to(at::kDouble).mean().item<double>();
  RecordProperty("argmax_agreement", std::to_string(frac));
  std::printf("bf16 vs fp32 argmax agreement: %.4f over %ld positions\n", frac, (long)agree.numel());
  // Issue 2's bar. ref-17m's weights are exactly bf16 (rounding them changes no argmax), so the
  // flips come from rounding activations; rounding the logits themselves to bf16 (ulp 2^-4 at
  // |x| ~ 10, where 1 % of top-2 gaps are below 0.012) was the largest share: with bf16 logits
  // this runtime agreed on 98.68 % and transformers' bf16 on 98.49 % (sdpa, H200, 2026-11-26).
  // The head now returns the fp32 accumulation (kernels::linear_logits).
  EXPECT_GE(frac, 0.99);
}

TEST(LlamaCuda, Fp32MatchesCpuGreedyIds) {
  REQUIRE_CUDA();
  // fp32 on the GPU runs the same math as the CPU (TF32 is off by default in ATen matmuls).
  Checkpoint ck = load_checkpoint(repo_path("models/stories260K/stories260K.bin"));
  LlamaModel m = LlamaModel::from_checkpoint(ck, cuda_opts(at::kFloat));
  GenerateOptions g;
  g.max_new_tokens = 256;
  std::vector<int64_t> expected;
  {
    std::ifstream in(repo_path("models/stories260K/expected_greedy_ids.txt"));
    int64_t x;
    while (in >> x) expected.push_back(x);
  }
  for (bool graph : {false, true}) {
    g.cuda_graph = graph;
    GenerateResult r = generate(m, {1}, g);
    EXPECT_EQ(r.used_cuda_graph, graph);
    EXPECT_EQ(r.ids, expected) << "cuda_graph=" << graph;
  }
}

TEST(LlamaCuda, GraphDecodeMatchesEagerDecode) {
  REQUIRE_CUDA();
  LlamaConfig c = small_8b(2);
  c.eos_token_ids = {1};
  c.bos_token_id = 0;
  LlamaModel m = LlamaModel::random(c, cuda_opts(at::kBFloat16), 7);
  at::Tensor prompt = at::randint(0, c.vocab_size, {1, 300}, at::kLong);
  KVCache a = m.new_cache(1, 310), b = m.new_cache(1, 310);
  m.forward(prompt, &a, true);
  m.forward(prompt, &b, true);
  CudaGraphDecoder dec(m, b);
  for (int64_t t = 0; t < 5; ++t) {
    const int64_t token = 17 + t;
    at::Tensor eager = m.forward(at::full({1, 1}, token, at::kLong), &a, true).view({-1});
    at::Tensor graph = dec.step(token, b.length).to(at::kFloat).view({-1});
    b.length += 1;
    // The two paths use different attention kernels (flash over the exact keys vs a masked
    // kernel over the padded cache), each rounding to bf16: after two blocks the logits (|x| < 4,
    // bf16 ulp <= 2^-6) differ by a few ulps. 4 ulps at |x| = 4 is 0.0625.
    // (No argmax check: random weights give near-uniform logits whose argmax flips on an ulp.)
    JNAS_EXPECT_CLOSE(graph, eager, 0.0625, 0.0);
  }
}

TEST(LlamaCuda, ProgrammaticLaunchIsBitwiseSerialLaunch) {
  REQUIRE_CUDA();
  // Programmatic dependent launch (kernels/launch.h) changes when kernels start, never what they
  // compute: every kernel waits for its predecessor before it reads an activation. A kernel that
  // read too early would see the previous step's buffers and change the logits. One block per
  // format family so that every programmatically launched kernel runs: the bf16 GEMV, w4 / w8
  // GEMVs, the activation quantizer with the int8 / fp8 GEMVs, norms, RoPE, attention, SiLU.
  LlamaConfig c = small_8b(3);
  std::vector<LayerSpec> specs = dense_layer_specs(c);
  const char* fmts[3][kNumSlots] = {{"w4a16_g128", "w8a16", "w4a16_g128", "w8a16"},
                                          {"w8a8", "fp8_e4m3", "fp8_e4m3", "w8a8"},
                                          {"bf16", "bf16", "bf16", "bf16"}};
  for (int l = 0; l < 3; ++l) {
    for (int slot = 0; slot < kNumSlots; ++slot) specs[l].format_of(slot) = fmts[l][slot];
  }
  LlamaModel m = LlamaModel::random(c, cuda_opts(at::kBFloat16), 5, specs);
  const at::Tensor prompt = at::randint(0, c.vocab_size, {1, 200}, at::kLong);
  std::vector<at::Tensor> logits[2];  // [pdl off, pdl on] x steps, eager then graph
  const bool was = kernels::programmatic_launch();
  for (int on = 0; on < 2; ++on) {
    kernels::set_programmatic_launch(on == 1);
    KVCache eager = m.new_cache(1, 240), graph = m.new_cache(1, 240);
    m.forward(prompt, &eager, true);
    m.forward(prompt, &graph, true);
    CudaGraphDecoder dec(m, graph);
    for (int64_t t = 0; t < 12; ++t) {
      logits[on].push_back(m.forward(at::full({1, 1}, 100 + 7 * t, at::kLong), &eager, true).cpu());
      logits[on].push_back(dec.step(100 + 7 * t, graph.length).cpu());
      graph.length += 1;
    }
  }
  kernels::set_programmatic_launch(was);
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t i = 0; i < logits[0].size(); ++i) {
    EXPECT_TRUE(at::equal(logits[0][i], logits[1][i])) << (i % 2 ? "graph" : "eager") << " step " << i / 2;
  }
}

TEST(LlamaCuda, GraphPrefillMatchesEagerPrefill) {
  REQUIRE_CUDA();
  // The CUDA-graph prefill that `jointnas bench` times: the same computation as forward() (only the
  // host-side id check is left out), so a replay reproduces the eager logits and K/V.
  LlamaConfig c = small_8b(2);
  LlamaModel m = LlamaModel::random(c, cuda_opts(at::kBFloat16), 11);
  const at::Tensor ids = at::randint(0, c.vocab_size, {2, 257}, at::kLong).cuda();
  KVCache a = m.new_cache(2, 257), b = m.new_cache(2, 257);
  const at::Tensor eager = m.forward(ids, &a, true);
  at::Tensor out;
  CudaGraphCall g([&] {
    b.length = 0;
    out = m.prefill_static(ids, b);
  });
  for (auto& t : b.k) {
    if (t.defined()) t.zero_();
  }
  g.replay();
  cuda_synchronize();
  // The capture runs on a side stream, where cuBLAS may pick another kernel for a shape: allow the
  // decode test's few bf16 ulps (logits |x| < 4: 0.0625; K/V |x| < 8, ulp 2^-5: 0.125).
  JNAS_EXPECT_CLOSE(out, eager, 0.0625, 0.0);
  for (size_t l = 0; l < a.k.size(); ++l) {
    JNAS_EXPECT_CLOSE(b.k[l].to(at::kFloat), a.k[l].to(at::kFloat), 0.125, 0.0);
    JNAS_EXPECT_CLOSE(b.v[l].to(at::kFloat), a.v[l].to(at::kFloat), 0.125, 0.0);
  }
  KVCache small = m.new_cache(2, 100);
  EXPECT_THROW(m.prefill_static(ids, small), ConfigError);
}

// Linears that quantize their input (w8a8, fp8) get it quantized by its producer (RMSNorm, SiLU *
// up) in one kernel; a hook on the linear inputs forces the unfused path. The two must agree
// bitwise, in prefill (_scaled_mm / _int_mm) and in decode (GEMVs with the fused residual), with
// formats mixed within a block so that fused and unfused producers meet.
TEST(LlamaCuda, ProducerQuantizedInputsAreBitwiseTheUnfusedBlock) {
  REQUIRE_CUDA();
  LlamaConfig c = small_8b(2);
  std::vector<LayerSpec> specs = dense_layer_specs(c);
  specs[0].format_qkv = specs[0].format_o = specs[0].format_gate_up = specs[0].format_down = "fp8_e4m3";
  specs[1].format_qkv = "w8a8";
  specs[1].format_gate_up = "fp8_e4m3";
  specs[1].format_down = "w8a8";  // o stays bf16
  const LlamaModel m = LlamaModel::random(c, cuda_opts(at::kBFloat16), 5, specs);
  int64_t taps = 0;
  ForwardHooks unfused;
  unfused.on_linear_input = [&](int64_t, LinearSlot, const at::Tensor&) { ++taps; };
  const at::Tensor ids = at::randint(0, c.vocab_size, {2, 65}, at::kLong).cuda();
  EXPECT_TRUE(at::equal(m.forward(ids), m.forward(ids, nullptr, false, &unfused)));
  EXPECT_EQ(taps, 2 * 4);
  KVCache a = m.new_cache(2, 80), b = m.new_cache(2, 80);
  EXPECT_TRUE(at::equal(m.forward(ids, &a, true), m.forward(ids, &b, true, &unfused)));
  for (int64_t t = 0; t < 3; ++t) {
    const at::Tensor tok = at::full({2, 1}, 17 + t, at::kLong).cuda();
    EXPECT_TRUE(at::equal(m.forward(tok, &a, true), m.forward(tok, &b, true, &unfused))) << "decode step " << t;
  }
}
