// Finetuning a found architecture: the supernet over the restricted space is the sub-network
// (equal to the extraction from the full supernet), distillation lowers the KD loss, and the
// exported checkpoint, LoRA merged, computes what the finetuned supernet computes.
#include <atomic>
#include <functional>
#include <limits>
#include <random>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/search/finetune.h"
#include "tiny_llama.h"

namespace jointnas::search {
namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 101;
  c.hidden_size = 256;
  c.intermediate_size = 256;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 64;
  return c;
}

constexpr const char* kSpace = R"(
hidden: [128, 256]
depth: [2, 3]
layers:
  heads: [1, 2]
  head_dim: [32, 64]
  intermediate: [128, 256]
formats: [bf16, w8a16]
)";

at::Tensor run_model(const model::LlamaModel& m, const at::Tensor& ids) { return m.forward(ids).to(at::kDouble); }

TEST(Finetune, RestrictedSupernetIsTheSubNetworkAndTrainingLowersKd) {
  const model::LlamaConfig c = config();
  const model::Checkpoint ck = testing::random_llama_checkpoint(c, 21, 0.05, 1.0);
  const SearchSpace space = SearchSpace::from_yaml(kSpace, c, "<test>", "cpu");
  const std::vector<int64_t> rank = {2, 0, 1};
  Arch a = largest_arch(space);
  a.hidden = 0;
  a.depth = 0;          // layer 0 (rank 2) dropped
  a.kv_groups[1] = 0;
  a.head_dims[2] = 0;
  a.intermediate[1] = 0;
  a.formats[1] = {1, 0, 1, 1};
  SupernetOptions so;
  so.dtype = at::kDouble;
  const at::Tensor ids = at::randint(101, {2, 12}, at::make_generator<at::CPUGeneratorImpl>(3), at::kLong);
  model::RuntimeOptions ro;
  ro.dtype = at::kDouble;
  // The restricted supernet at its only architecture == the full supernet's extraction.
  Supernet full(ck, space, rank, so, 1);
  const at::Tensor want = run_model(full.extract(a, ro), ids);
  const SearchSpace one = restrict_to(space, a);
  EXPECT_EQ(one.log10_num_architectures(rank), 0.0);
  so.lora_rank = 4;
  Supernet net(ck, one, rank, so, 1);
  EXPECT_TRUE(net.named_arch_parameters().empty());
  const ArchDist d = net.one_hot(first_arch(one));
  // fp64 everywhere except the RoPE tables, which both sides hold in fp32 (LlamaModel's layout)
  // and which a reduced head size builds from theta^(hd/d) rounded differently: ~1e-7 at logits ~5.
  constexpr double kTol = 1e-6;
  EXPECT_LE((net.forward(ids, d) - want).abs().max().item<double>(), kTol);

  // Two windows only: the adapters can fit them, so the KD must fall well below its start.
  std::mt19937_64 rng(4);
  std::vector<int64_t> tokens(32);
  for (auto& t : tokens) t = static_cast<int64_t>(rng() % 101);
  FinetuneOptions o;
  o.steps = 40;
  o.batch = 2;
  o.seq_len = 16;
  o.lr = 1e-3;
  LocalProcessGroup pg;
  std::vector<double> kd;
  const FinetuneResult r = run_finetune(net, tokens, o, pg, [&](const Json& j) { kd.push_back(j["kd"].get<double>()); });
  EXPECT_EQ(kd.size(), 40u);
  EXPECT_LT(r.last_kd, 0.5 * r.first_kd) << "distillation must recover part of the gap";

  // Export: LoRA merged into the weight, then quantized. Layers in bf16 match exactly; a w8a16
  // layer re-quantizes W + BA (the supernet trained FQ(W) + BA), so this test exports a bf16-only
  // architecture for the exact check.
  Arch b = a;
  for (auto& f : b.formats) f = {0, 0, 0, 0};
  const SearchSpace one_bf16 = restrict_to(space, b);
  Supernet net2(ck, one_bf16, rank, so, 2);
  run_finetune(net2, tokens, o, pg, {});
  const model::Checkpoint exported = net2.extract_checkpoint(first_arch(one_bf16));
  const std::vector<model::LayerSpec> specs = exported.config.layer_specs;
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_TRUE(specs[0].skip);
  const model::LlamaModel m = model::LlamaModel::from_checkpoint(exported, ro, specs);
  EXPECT_LE((run_model(m, ids) - net2.forward(ids, net2.one_hot(first_arch(one_bf16)))).abs().max().item<double>(), kTol);
  // And it is not the untrained sub-network any more.
  EXPECT_GT((run_model(m, ids) - run_model(full.extract(b, ro), ids)).abs().max().item<double>(), 1e-4);
}

TEST(Finetune, RejectsASupernetWithChoicesLeft) {
  const model::LlamaConfig c = config();
  const model::Checkpoint ck = testing::random_llama_checkpoint(c, 1, 0.05, 1.0);
  Supernet net(ck, SearchSpace::from_yaml(kSpace, c, "<test>", "cpu"), {}, SupernetOptions{}, 1);
  LocalProcessGroup pg;
  EXPECT_THROW(run_finetune(net, std::vector<int64_t>(512, 1), FinetuneOptions{}, pg, {}), ConfigError);
}

// A small finetune for the reliability tests: its own supernet and data, `edit` sets options.
struct SmallFinetune {
  model::LlamaConfig c = config();
  model::Checkpoint ck = testing::random_llama_checkpoint(c, 21, 0.05, 1.0);
  SearchSpace one;
  std::vector<int64_t> tokens;
  SmallFinetune() {
    const SearchSpace space = SearchSpace::from_yaml(kSpace, c, "<test>", "cpu");
    Arch a = largest_arch(space);
    a.hidden = 0;
    a.formats[1] = {1, 0, 1, 1};
    one = restrict_to(space, a);
    std::mt19937_64 rng(4);
    tokens.resize(256);
    for (auto& t : tokens) t = static_cast<int64_t>(rng() % 101);
  }
  // Runs it; returns the LoRA parameters after the run and the KD of every step run.
  std::pair<std::vector<at::Tensor>, std::vector<double>> run(const std::function<void(FinetuneOptions&)>& edit,
                                                              const std::function<void(int64_t)>& on_step = {}) {
    SupernetOptions so;
    so.lora_rank = 2;
    Supernet net(ck, one, {}, so, 3);
    FinetuneOptions o;
    o.steps = 12;
    o.batch = 2;
    o.seq_len = 16;
    o.lr = 1e-2;
    o.seed = 9;
    edit(o);
    LocalProcessGroup pg;
    std::vector<double> kd;
    run_finetune(net, tokens, o, pg, [&](const Json& j) {
      kd.push_back(j["kd"].get<double>());
      if (on_step) on_step(j["step"].get<int64_t>());
    });
    std::vector<at::Tensor> lora;
    for (auto& [n, t] : net.named_lora_parameters()) lora.push_back(t.detach().clone());
    return {lora, kd};
  }
};

// Issue 9: a finetune killed mid-way (last checkpoint at step 4, dies after step 6) or
// interrupted (checkpoint after the current step, Interrupted) and run again ends with the same
// adapters, bit for bit, and the same per-step KD as an uninterrupted run.
TEST(Finetune, ResumeAfterKillOrInterruptIsBitIdentical) {
  SmallFinetune fx;
  const std::string root = ::testing::TempDir() + "/jnas_finetune_resume";
  remove_tree(root);
  const auto [ref_lora, ref_kd] = fx.run([&](FinetuneOptions& o) { o.checkpoint.dir = root + "/ref"; });
  ASSERT_EQ(ref_kd.size(), 12u);
  struct Killed {};
  for (const bool sigint : {false, true}) {
    const std::string dir = root + (sigint ? "/interrupted" : "/killed");
    std::atomic<bool> flag{false};
    try {
      fx.run(
          [&](FinetuneOptions& o) {
            o.checkpoint.dir = dir;
            o.checkpoint.every = 4;
            o.checkpoint.interrupt = &flag;
          },
          [&](int64_t step) {
            if (step != 6) return;
            if (!sigint) throw Killed{};
            flag = true;
          });
      FAIL() << "the finetune should have stopped at step 6";
    } catch (const Killed&) {
      EXPECT_FALSE(sigint);
    } catch (const Interrupted&) {
      EXPECT_TRUE(sigint);
    }
    int64_t resumed_at = -1;
    const auto [lora, kd] = fx.run([&](FinetuneOptions& o) {
      o.checkpoint.dir = dir;
      o.checkpoint.every = 4;
      o.checkpoint.on_resume = [&](int64_t s) { resumed_at = s; };
    });
    EXPECT_EQ(resumed_at, sigint ? 7 : 4);
    ASSERT_EQ(static_cast<int64_t>(kd.size()) + resumed_at, 12);
    for (size_t i = 0; i < kd.size(); ++i) EXPECT_EQ(kd[i], ref_kd[i + static_cast<size_t>(resumed_at)]);
    ASSERT_EQ(lora.size(), ref_lora.size());
    for (size_t i = 0; i < lora.size(); ++i) EXPECT_TRUE(at::equal(lora[i], ref_lora[i])) << "adapter " << i;
  }
  // A checkpoint of another finetune (another seed) in the directory is stale: it starts over
  // and gets what a fresh run gets.
  const auto [fresh_lora, fresh_kd] = fx.run([&](FinetuneOptions& o) { o.seed = 10; });
  const auto [over_lora, over_kd] = fx.run([&](FinetuneOptions& o) {
    o.seed = 10;
    o.checkpoint.dir = root + "/ref";
  });
  EXPECT_EQ(over_kd, fresh_kd);
  for (size_t i = 0; i < over_lora.size(); ++i) EXPECT_TRUE(at::equal(over_lora[i], fresh_lora[i]));
  remove_tree(root);
}

// Issue 9: the NaN/Inf guard stops at the step where the loss goes non-finite and names the
// tensor: here an adapter poisoned with NaN before step 3, found by its parameter name.
TEST(Finetune, NonFiniteLossNamesTheTensorAndStep) {
  SmallFinetune fx;
  SupernetOptions so;
  so.lora_rank = 2;
  Supernet net(fx.ck, fx.one, {}, so, 3);
  const auto named = net.named_lora_parameters();
  ASSERT_FALSE(named.empty());
  const std::string victim = named.back().first;
  at::Tensor p = named.back().second;
  FinetuneOptions o;
  o.steps = 6;
  o.batch = 2;
  o.seq_len = 16;
  LocalProcessGroup pg;
  try {
    run_finetune(net, fx.tokens, o, pg, [&](const Json& j) {
      if (j["step"].get<int64_t>() == 2) {
        at::NoGradGuard ng;
        p.fill_(std::numeric_limits<double>::quiet_NaN());
      }
    });
    FAIL() << "a NaN adapter must stop the finetune";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("step 3"), std::string::npos) << what;
    EXPECT_NE(what.find(victim), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace jointnas::search
