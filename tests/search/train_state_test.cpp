// Issue 26: a resumed checkpoint is a file like any other input. NaN LoRA factors in a finetune
// checkpoint (or NaN Adam moments, or architecture logits) were resumed without a word; every
// floating tensor of a checkpoint is now checked when it is read, and the error names it.
#include <limits>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/search/train_state.h"

namespace jointnas::search {
namespace {

TEST(TrainState, ANonFiniteTensorInACheckpointIsRefusedWithItsName) {
  const std::string dir = ::testing::TempDir() + "/jnas_train_state_nan";
  Checkpointing policy;
  policy.dir = dir;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    remove_tree(dir);
    CheckpointDir cd(policy, "jointnas-finetune-state");
    ASSERT_FALSE(cd.load_latest(100).has_value());
    at::Tensor lora = at::zeros({4, 2});
    lora[2][1] = bad;
    cd.save(7, {{"lora/00000", at::ones({3})}, {"lora/00001", lora}, {"step_rng", at::zeros({2}, at::kLong)}},
            Json::object());
    try {
      cd.load_latest(100);
      FAIL() << "a checkpoint with " << bad << " was resumed";
    } catch (const IoError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("'lora/00001'"), std::string::npos) << m;
      EXPECT_NE(m.find("ckpt-000007.safetensors"), std::string::npos) << m;
      EXPECT_NE(m.find("not finite"), std::string::npos) << m;
      EXPECT_NE(e.hint().find(dir), std::string::npos) << e.hint();
    }
  }
  // The same checkpoint with finite values resumes.
  remove_tree(dir);
  CheckpointDir cd(policy, "jointnas-finetune-state");
  ASSERT_FALSE(cd.load_latest(100).has_value());
  cd.save(7, {{"lora/00000", at::ones({3})}, {"step_rng", at::zeros({2}, at::kLong)}}, Json::object());
  const auto l = cd.load_latest(100);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->step, 7);
  remove_tree(dir);
}

}  // namespace
}  // namespace jointnas::search
