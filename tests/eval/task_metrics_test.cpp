// lm-eval's metrics, standard errors, Python's random stream, rolling windows and the standard
// tasks' hooks against goldens computed by lm-eval 0.4.13's own code
// (scripts/make_task_goldens.py -> tests/fixtures/eval/task_goldens.json); request tokenization.
#include <cmath>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/eval/loglikelihood.h"
#include "jointnas/eval/py_random.h"
#include "jointnas/eval/task_builtins.h"
#include "jointnas/eval/task_metrics.h"
#include "tensor_assert.h"

using namespace jointnas;
using namespace jointnas::eval;
using jointnas::testing::fixture_path;
using jointnas::testing::shared_path;

namespace {
const Json& goldens() {
  static const Json g = read_json_file(fixture_path("eval/task_goldens.json"));
  return g;
}
// Same operations in the same order as Python, so only the last bits may differ (exp / log
// implementations): 1e-12 relative.
constexpr double kRel = 1e-12;
}  // namespace

TEST(PyRandom, ReproducesPythonsStream) {
  const Json& g = goldens()["random"];
  py::Random r(1234);
  for (const auto& x : g["random_1234"]) EXPECT_EQ(r.random(), x.get<double>());
  py::Random z(0);
  const int bits[] = {1, 7, 32, 33, 64};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(z.getrandbits(bits[i]), g["getrandbits_0"][i].get<uint64_t>());
  for (const auto& s : g["sample"]) {
    py::Random rs(s["seed"].get<uint64_t>());
    for (const auto& d : s["draws"]) {
      EXPECT_EQ(rs.sample(s["n"].get<size_t>(), s["k"].get<size_t>()), d.get<std::vector<size_t>>()) << s["n"];
    }
  }
  py::Random rc(g["choices"]["seed"].get<uint64_t>());
  EXPECT_EQ(rc.choices(17, 40), g["choices"]["draw"].get<std::vector<size_t>>());
}

TEST(TaskMetrics, AggregationsAndStandardErrorsMatchLmEval) {
  const Json& g = goldens()["metrics"];
  const auto lls = g["lls"].get<std::vector<double>>();
  const auto acc = g["acc"].get<std::vector<double>>();
  MetricItems pairs;
  for (const auto& p : g["pairs"]) {
    pairs.x.push_back(p[0].get<double>());
    pairs.weight.push_back(p[1].get<double>());
  }
  auto near = [](double got, double want) { EXPECT_NEAR(got, want, kRel * std::fabs(want)); };
  const MetricValue m = aggregate_metric("mean", {acc, {}}, 100000);
  near(m.value, g["mean"].get<double>());
  near(m.stderr_, g["mean_stderr"].get<double>());
  near(aggregate_metric("perplexity", {lls, {}}, 0).value, g["perplexity"].get<double>());
  // The bootstrap draws lm-eval's exact resamples (Random(i).choices per chunk of 1000).
  near(bootstrap_perplexity_stderr(lls, 2000), g["perplexity_stderr_2000"].get<double>());
  near(bootstrap_perplexity_stderr(std::vector<double>(lls.begin(), lls.begin() + 8), 100000),
       g["perplexity_stderr_100000_first8"].get<double>());
  near(aggregate_metric("weighted_perplexity", pairs, 0).value, g["weighted_perplexity"].get<double>());
  near(aggregate_metric("bits_per_byte", pairs, 0).value, g["bits_per_byte"].get<double>());
  EXPECT_TRUE(std::isnan(aggregate_metric("bits_per_byte", pairs, 100).stderr_));  // lm-eval: N/A
  near(pooled_stderr(g["pooled"]["stderrs"].get<std::vector<double>>(), g["pooled"]["sizes"].get<std::vector<int64_t>>()),
       g["pooled"]["value"].get<double>());
  EXPECT_TRUE(std::isnan(mean_stderr({1.0})));
  EXPECT_THROW(aggregate_metric("median", {acc, {}}, 0), ConfigError);
}

TEST(TaskMetrics, ChoiceScoresAreNumpyArgmax) {
  // Ties go to the first maximum; acc_norm divides by code points, acc_bytes by UTF-8 bytes.
  ChoiceScore s = score_choices({"ab", "cd"}, {-1.0, -1.0}, {1});
  EXPECT_EQ(s.pred, 0);
  EXPECT_EQ(s.acc, 0.0);
  // "\u00e9\u00e9" is 2 code points and 4 bytes: -2.0 / 2 = -1.0 < -2.5 / 3 = -0.833 (acc_norm
  // picks choice 1) but -2.0 / 4 = -0.5 > -0.833 (acc_bytes picks choice 0).
  s = score_choices({"\u00e9\u00e9", "abc"}, {-2.0, -2.5}, {0});
  EXPECT_EQ(s.pred, 0);
  EXPECT_EQ(s.pred_norm, 1);
  EXPECT_EQ(s.pred_bytes, 0);
  // Multiple targets: correct when the prediction is any of them.
  EXPECT_EQ(score_choices({"a", "b", "c"}, {-3, -1, -2}, {0, 1}).acc, 1.0);
}

TEST(RollingWindows, MatchLmEval) {
  for (const auto& c : goldens()["rolling"]) {
    const int64_t n = c["n"].get<int64_t>(), max_len = c["max_len"].get<int64_t>();
    std::vector<int64_t> toks(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) toks[static_cast<size_t>(i)] = 100 + i;
    const auto got = rolling_windows(toks, 1, max_len);
    SCOPED_TRACE(c.dump());
    ASSERT_EQ(got.size(), c["windows"].size());
    for (size_t w = 0; w < got.size(); ++w) {
      EXPECT_EQ(got[w].context, c["windows"][w][0].get<std::vector<int64_t>>());
      EXPECT_EQ(got[w].continuation, c["windows"][w][1].get<std::vector<int64_t>>());
    }
  }
}

TEST(TaskHooks, MatchLmEvalsPython) {
  const Json& g = goldens()["hooks"];
  for (const auto& c : g["hellaswag_preprocess"]) EXPECT_EQ(hellaswag_preprocess(c["in"]), c["out"].get<std::string>());
  for (const auto& c : g["wikitext_detokenizer"]) EXPECT_EQ(wikitext_detokenize(c["in"]), c["out"].get<std::string>());
  for (const auto& c : g["wikitext_process_results"]) {
    const auto got = builtin_process_results("wikitext", "preprocess_wikitext.process_results", Json{{"page", c["page"]}},
                                             c["ll"].get<double>());
    for (const auto& [m, w] : got) {
      EXPECT_EQ(w.ll, c["out"][m][0].get<double>()) << m;
      EXPECT_EQ(w.weight, c["out"][m][1].get<double>()) << m;
    }
  }
}

TEST(Loglikelihood, RequestsTokenizeLikeLmEval) {
  const std::string dir = shared_path("models/ref-17m");
  JNAS_REQUIRE_FILE(dir + "/tokenizer.model");
  auto tok = tok::load_tokenizer(dir);
  auto enc = [&](const std::string& s) {
    std::vector<int64_t> v{1};
    for (int32_t id : tok->encode(s)) v.push_back(id);
    return v;
  };
  // continuation = enc(ctx + cont)[len(enc(ctx)):], BOS on both.
  LoglikRequest r = encode_request(*tok, 1, "Question: why?\nAnswer:", " because");
  EXPECT_EQ(r.context, enc("Question: why?\nAnswer:"));
  const std::vector<int64_t> whole = enc("Question: why?\nAnswer: because");
  EXPECT_EQ(r.continuation, std::vector<int64_t>(whole.begin() + static_cast<long>(r.context.size()), whole.end()));
  // Trailing whitespace of the context (Python's, U+00A0 included) moves to the continuation.
  LoglikRequest s = encode_request(*tok, 1, "Answer: ", "yes");
  EXPECT_EQ(s.context, enc("Answer:"));
  EXPECT_EQ(s.continuation, encode_request(*tok, 1, "Answer:", " yes").continuation);
  EXPECT_EQ(encode_request(*tok, 1, "Answer:\u00a0", "yes").context, enc("Answer:"));
  // Empty context: the prefix token (BOS, else EOS) is the context.
  LoglikRequest e = encode_request(*tok, 1, "", "hello");
  EXPECT_EQ(e.context, std::vector<int64_t>{1});
  EXPECT_EQ(e.continuation.size() + 1, enc("hello").size());
  EXPECT_EQ(encode_request(*tok, -1, "", "hello", 2).context, std::vector<int64_t>{2});
}
