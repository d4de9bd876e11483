// Per-item log-likelihoods of ref-17m against lm-evaluation-harness's own (committed goldens made
// by scripts/lm_eval_parity.py --golden, recipe in tests/fixtures/README.md). The first items of
// every task, one MMLU subject, 0- and 5-shot; the script compares whole runs (docs/eval.md).
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "jointnas/core/json_util.h"
#include "jointnas/eval/task_eval.h"
#include "jointnas/model/checkpoint.h"
#include "tensor_assert.h"

using namespace jointnas;
using jointnas::testing::fixture_path;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

namespace {

// Tolerance per choice: both sides are fp32 forwards of the same weights, which agree within
// 1e-4 in every logit (the house tolerance for a tiny model against transformers, checked on
// ref-17m's golden logits). A token's log-probability is logit - logsumexp(logits), each off by
// at most 1e-4, so a continuation of c tokens may differ by 2e-4 * c. Measured: ~2e-6 per token.
constexpr double kPerTokenTol = 2e-4;
constexpr int64_t kItems = 5;  // per task, keeps the test a few seconds

struct Fixture {
  model::LlamaModel model;
  std::unique_ptr<tok::Tokenizer> tok;
};

void check_task(const Fixture& f, const Json& golden, const std::string& task,
                const std::string& data_dir, const std::string& subject) {
  SCOPED_TRACE(task);
  eval::TaskConfig cfg = eval::load_task_config(repo_path("configs/tasks/" + task + ".yaml"));
  eval::TaskEvalOptions o;
  o.data_dir = data_dir;
  o.limit = subject.empty() ? kItems : golden["tasks"][task]["limit"].get<int64_t>();
  o.score.batch = 8;
  o.bootstrap_iters = 0;
  eval::TaskResult r = eval::evaluate_task(f.model, *f.tok, /*bos=*/1, cfg, o);
  std::vector<Json> want;
  for (const auto& it : golden["tasks"][task]["items"]) {
    if (subject.empty() || it["subtask"] == subject) want.push_back(it);
  }
  ASSERT_GE(want.size(), r.items.size());
  ASSERT_GT(r.items.size(), 0u);
  for (size_t i = 0; i < r.items.size(); ++i) {
    const auto& got = r.items[i];
    const auto ref = want[i]["lls"].get<std::vector<double>>();
    ASSERT_EQ(got.lls.size(), ref.size()) << "item " << i;
    size_t best = 0;
    for (size_t c = 0; c < ref.size(); ++c) {
      EXPECT_NEAR(got.lls[c], ref[c], kPerTokenTol * static_cast<double>(got.cont_tokens[c]))
          << "item " << i << " choice " << c;
      if (ref[c] > ref[best]) best = c;
    }
    // The decision agrees unless two choices are closer than the tolerance allows to resolve.
    double gap = 1e300;
    int64_t max_tokens = 0;
    for (size_t c = 0; c < ref.size(); ++c) {
      if (c != best) gap = std::min(gap, ref[best] - ref[c]);
      max_tokens = std::max(max_tokens, got.cont_tokens[c]);
    }
    if (gap > 2 * kPerTokenTol * static_cast<double>(max_tokens)) {
      EXPECT_EQ(got.score.pred, static_cast<int64_t>(best)) << "item " << i;
    }
  }
}

}  // namespace

TEST(LmEvalGolden, Ref17mFirstItemsMatchLmEval) {
  const std::string dir = shared_path("models/ref-17m");
  const std::string golden_path = fixture_path("eval/lm_eval_ref17m.json");
  JNAS_REQUIRE_FILE(dir + "/tokenizer.model");
  JNAS_REQUIRE_FILE(shared_path("data/tasks/boolq/boolq.jsonl"));
  const Json golden = read_json_file(golden_path);
  Fixture f{model::LlamaModel::from_checkpoint(model::load_checkpoint(dir), {}),
            tok::load_tokenizer(dir)};
  for (const char* task : {"boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge"}) {
    check_task(f, golden, task, shared_path("data"), "");
  }
  // MMLU: one subject (a data directory holding only its test and dev files, copied: a symlink
  // out of the data directory is refused), 0- and 5-shot.
  const fs::path tmp = fs::temp_directory_path() / ("jnas_lm_eval_golden_mmlu_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp / "tasks/mmlu/test");
  fs::create_directories(tmp / "tasks/mmlu/dev");
  const std::string subject = "abstract_algebra";
  fs::copy_file(shared_path("data/tasks/mmlu/test/" + subject + "_test.csv"),
                tmp / "tasks/mmlu/test" / (subject + "_test.csv"));
  fs::copy_file(shared_path("data/tasks/mmlu/dev/" + subject + "_dev.csv"),
                tmp / "tasks/mmlu/dev" / (subject + "_dev.csv"));
  for (const char* task : {"mmlu", "mmlu_5shot"}) check_task(f, golden, task, tmp.string(), subject);
  fs::remove_all(tmp);
}
