// lm-eval task YAMLs -> requests, against lm-eval itself: the fixtures in tests/fixtures/eval/tasks
// are lm-eval 0.4.13's own YAMLs (data location changed to a hand-made file in each dataset's
// schema), and task_goldens.json holds the (context, continuation) pairs and gold decisions
// lm-eval's ConfigurableTask built from the same files (scripts/make_task_goldens.py).
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/eval/task_eval.h"
#include "jointnas/eval/task_instances.h"
#include "jointnas/eval/task_metrics.h"
#include "tensor_assert.h"

using namespace jointnas;
using namespace jointnas::eval;
using jointnas::testing::fixture_path;

namespace {

const Json& goldens() {
  static const Json g = read_json_file(fixture_path("eval/task_goldens.json"));
  return g;
}

std::vector<Instance> fixture_instances(const std::string& name, TaskConfig* cfg_out = nullptr) {
  TaskConfig cfg = load_task_config(fixture_path("eval/tasks/" + name + ".yaml"));
  TaskEvalOptions o;
  o.data_dir = fixture_path("eval/tasks");
  auto in = load_instances(cfg, o);
  if (cfg_out) *cfg_out = cfg;
  return in;
}

// The gold index lm-eval's process_results uses (acc_by_pred has a 1 there; -100 when none).
int64_t lm_eval_gold(const Json& item) {
  const auto acc = item["acc_by_pred"];
  for (size_t k = 0; k < acc.size(); ++k) {
    if (acc[k].get<double>() == 1.0) return static_cast<int64_t>(k);
  }
  return kGoldOutOfRange;
}

void expect_same_requests(const std::string& name) {
  SCOPED_TRACE(name);
  TaskConfig cfg;
  const auto got = fixture_instances(name, &cfg);
  const Json& want = goldens()["requests"][name];
  ASSERT_EQ(got.size(), want["items"].size());
  EXPECT_EQ(output_type_name(cfg.output_type), want["output_type"].get<std::string>());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("document " + std::to_string(i));
    const Json& args = want["items"][i]["args"];
    if (cfg.output_type == OutputType::kLoglikelihoodRolling) {
      ASSERT_EQ(args.size(), 1u);
      EXPECT_EQ(got[i].continuations[0], args[0][0].get<std::string>());
      continue;
    }
    ASSERT_EQ(got[i].contexts.size(), args.size());
    for (size_t k = 0; k < args.size(); ++k) {
      EXPECT_EQ(got[i].contexts[k], args[k][0].get<std::string>()) << "request " << k;
      EXPECT_EQ(got[i].continuations[k], args[k][1].get<std::string>()) << "request " << k;
    }
    if (cfg.output_type == OutputType::kMultipleChoice) {
      EXPECT_EQ(got[i].choices, want["items"][i]["choices"].get<std::vector<std::string>>());
      ASSERT_EQ(got[i].golds.size(), 1u);
      EXPECT_EQ(got[i].golds[0], lm_eval_gold(want["items"][i]));
    }
  }
}

}  // namespace

TEST(TaskRequests, EveryFixtureTaskBuildsLmEvalsRequests) {
  ASSERT_EQ(goldens()["lm_eval"].get<std::string>(), "0.4.13");
  for (const char* t : {"openbookqa", "social_iqa", "copa", "arc_easy", "lambada_openai", "wikitext", "winogrande",
                        "hellaswag", "piqa", "boolq"}) {
    expect_same_requests(t);
  }
}

// Few-shot: MMLU's first_n sampler (dev split, description first) and the default sampler, which
// draws random.Random(1234).sample from the training split for each document in turn.
TEST(TaskRequests, FewShotContextsMatchLmEval) {
  expect_same_requests("mmlu_fixture");
  expect_same_requests("arc_fewshot");
}

// ---- acceptance 2: the data conventions of lm-eval's datasets, each read as lm-eval reads it.

// Letter answers: ARC and OpenBookQA give the answer as a label ("B", or " C" in a corrupted
// row that openbookqa.yaml's lstrip() repairs), not an index; ARC also has numeric labels "1".."3".
TEST(TaskConventions, LetterAnswers) {
  const auto obqa = fixture_instances("openbookqa");
  ASSERT_EQ(obqa.size(), 3u);
  EXPECT_EQ(obqa[0].golds, std::vector<int64_t>{1});  // "B"
  EXPECT_EQ(obqa[1].golds, std::vector<int64_t>{2});  // " C"
  EXPECT_EQ(obqa[2].golds, std::vector<int64_t>{0});  // "A"
  const auto arc = fixture_instances("arc_easy");
  EXPECT_EQ(arc[0].golds, std::vector<int64_t>{1});  // "B" of A-D
  EXPECT_EQ(arc[1].golds, std::vector<int64_t>{2});  // "3" of labels 1-3
  EXPECT_EQ(arc[2].golds, std::vector<int64_t>{1});  // "B" of A-E (5 choices)
  EXPECT_EQ(arc[2].choices.size(), 5u);
}

// 1-based labels: SIQA's "1".."3" become 0..2 through doc_to_target "{{ (label|int) - 1 }}",
// including label "3" (refused before) and on a subset without a "3" (silently off by one before).
TEST(TaskConventions, OneBasedLabels) {
  const auto siqa = fixture_instances("social_iqa");
  ASSERT_EQ(siqa.size(), 3u);
  EXPECT_EQ(siqa[0].golds, std::vector<int64_t>{2});  // "3"
  EXPECT_EQ(siqa[1].golds, std::vector<int64_t>{0});  // "1"
  EXPECT_EQ(siqa[2].golds, std::vector<int64_t>{1});  // "2"
  // WinoGrande's "1"/"2" answers pick the context (multiple input), 0-based.
  const auto wino = fixture_instances("winogrande");
  EXPECT_EQ(wino[0].golds, std::vector<int64_t>{0});
  EXPECT_EQ(wino[2].golds, std::vector<int64_t>{1});
}

// Delimiter spaces: COPA's choices carry their own leading space and the default target_delimiter
// adds another, so lm-eval scores "  because"-style continuations with two spaces; acc_norm then
// divides by len(" " + choice). Both are reproduced exactly, with no special configuration.
TEST(TaskConventions, DelimiterSpaces) {
  const auto copa = fixture_instances("copa");
  ASSERT_EQ(copa.size(), 3u);
  EXPECT_EQ(copa[0].contexts[0], "My body cast a shadow over the grass because");
  EXPECT_EQ(copa[0].continuations[0], "  the sun was rising.");
  EXPECT_EQ(copa[0].choices[0], " the sun was rising.");
  // acc_norm divides by len(choice) with its leading space: -5.0 / 5 = -1.0 vs -1.9 / 2 = -0.95
  // picks choice 1; without the space, -5.0 / 4 = -1.25 vs -1.9 / 1 = -1.9 would pick choice 0.
  EXPECT_EQ(score_choices({" aaaa", " a"}, {-5.0, -1.9}, {1}).pred_norm, 1);
  EXPECT_EQ(score_choices({"aaaa", "a"}, {-5.0, -1.9}, {1}).pred_norm, 0);
}

// Lowercasing and value mapping: COPA's hooks lowercase the choice's first letter and map the
// question "cause" / "effect" to "because" / "therefore".
TEST(TaskConventions, LowercasingAndValueMapping) {
  const auto copa = fixture_instances("copa");
  EXPECT_EQ(copa[1].contexts[0], "The woman tolerated her friend's difficult behavior because");
  EXPECT_EQ(copa[1].continuations[1], "  the woman felt that her friend took advantage of her kindness.");
  EXPECT_EQ(copa[2].contexts[0], "The physician misdiagnosed the patient therefore");
  EXPECT_EQ(copa[2].golds, std::vector<int64_t>{0});
  // A question that is neither is a KeyError in lm-eval: an error naming the task file and key.
  TaskConfig cfg = load_task_config(fixture_path("eval/tasks/copa.yaml"));
  Doc d{Json{{"premise", "It rained."}, {"choice1", "A"}, {"choice2", "B"}, {"question", "why"}, {"label", 0}},
        "mem:1", ""};
  try {
    build_instances(cfg, {d}, {}, 0);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("copa.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find("doc_to_text"), std::string::npos) << m;
    EXPECT_NE(m.find("mem:1"), std::string::npos) << m;
  }
}

// A gold outside the choices is lm-eval's -100: scored wrong, counted, not an error.
TEST(TaskConventions, GoldOutOfRangeIsWrongAsInLmEval) {
  TaskConfig cfg = load_task_config(fixture_path("eval/tasks/social_iqa.yaml"));
  Doc d{Json{{"context", "c"}, {"question", "q"}, {"answerA", "a"}, {"answerB", "b"}, {"answerC", "c"},
             {"label", "4"}}, "mem:1", ""};
  const auto in = build_instances(cfg, {d}, {}, 0);
  EXPECT_EQ(in[0].golds, std::vector<int64_t>{kGoldOutOfRange});
  EXPECT_EQ(score_choices(in[0].choices, {0, -1, -2}, in[0].golds).acc, 0.0);
}
