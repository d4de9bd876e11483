// Task files, readers, templates, lm-eval request construction and metrics (no model needed,
// except the tokenizer of ref-17m for the request tokenization tests).
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/eval/loglikelihood.h"
#include "jointnas/eval/task_eval.h"
#include "jointnas/eval/task_readers.h"
#include "jointnas/eval/tasks.h"
#include "tensor_assert.h"

using namespace jointnas;
using namespace jointnas::eval;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

namespace {

// A scratch directory per test, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("jnas_tasks_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

Doc doc_of(std::map<std::string, DocValue> f) {
  Doc d;
  d.fields = std::move(f);
  d.where = "test";
  return d;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// `strip` is Python's str.strip(): every str.isspace() code point at either end, in UTF-8. The
// full-split MMLU parity run found a sociology question ending in U+0085 (NEXT LINE) that an
// ASCII-only strip kept (one decision flip against lm-eval). Expected values from Python 3.11:
// "\u0085\u00a0 Why?\u3000\u2029\x1f".strip() == "Why?".
TEST(Tasks, StripIsPythonsUnicodeStrip) {
  auto strip = [](const std::string& s) {
    return render_template("{q|strip}", doc_of({{"q", s}}), "t");
  };
  EXPECT_EQ(strip("Which of these?\u0085"), "Which of these?");
  EXPECT_EQ(strip("\u0085\u00a0 Why?\u3000\u2029\x1f"), "Why?");
  EXPECT_EQ(strip("\u2000\u200a x \u202f\u205f\u1680"), "x");
  // Not whitespace: kept (U+200B ZERO WIDTH SPACE, U+FEFF, accented letters), and bytes that are
  // not UTF-8 are left alone rather than misread.
  EXPECT_EQ(strip("\u200bx\ufeff"), "\u200bx\ufeff");
  EXPECT_EQ(strip(" caf\u00e9 "), "caf\u00e9");
  EXPECT_EQ(strip(std::string(" a\xc2")), "a\xc2");
  EXPECT_EQ(strip(std::string("\x85" "a" "\xa0")), std::string("\x85" "a" "\xa0"));
  EXPECT_EQ(strip(" \u0085 "), "");
}

TEST(Tasks, TemplatesAndFilters) {
  Doc d = doc_of({{"q", std::string("  Why?  ")}, {"s", std::string("high_school_physics")}});
  EXPECT_EQ(render_template("{q|strip}\nAnswer:", d, "t"), "Why?\nAnswer:");
  EXPECT_EQ(render_template("about {s|underscores_to_spaces}.", d, "t"), "about high school physics.");
  EXPECT_EQ(render_template("{{literal}} {q|strip}", d, "t"), "{literal} Why?");
  EXPECT_THROW(render_template("{missing}", d, "t"), IoError);
  EXPECT_THROW(render_template("{q", d, "t"), ConfigError);
  EXPECT_THROW(render_template("{q|nope}", d, "t"), ConfigError);
  // Python str.capitalize: first upper, the rest lower.
  EXPECT_EQ(apply_filter("capitalize", "the man in Paris"), "The man in paris");
  EXPECT_EQ(apply_filter("capitalize", ""), "");
  // lm-eval hellaswag preprocess: strip, " [title]" -> ". ", drop [..], "  " -> " " once.
  EXPECT_EQ(apply_filter("hellaswag", " How to cook [title] Boil water [step] now. "),
            "How to cook. Boil water now.");
  EXPECT_EQ(apply_filter("hellaswag", "a   b"), "a  b");  // Python replace: three spaces keep two
  EXPECT_EQ(apply_filter("hellaswag", "see [www.x.org] it"), "see it");
  EXPECT_EQ(apply_filter("hellaswag", "open [bracket"), "open [bracket");
  EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4);  // "café": 4 code points, 5 bytes
}

TEST(Tasks, ScoreItemNormalizesByCharsAndBytes) {
  McItem it;
  it.choices = {"ab", "caf\xc3\xa9!"};  // 2 chars / 2 bytes; 5 chars / 6 bytes
  it.gold = 1;
  // ll/chars: -2/2 = -1 vs -4.6/5 = -0.92 -> 1; ll/bytes: -1 vs -4.6/6 = -0.77 -> 1; raw -> 0.
  ItemScore s = score_item(it, {-2.0, -4.6});
  EXPECT_EQ(s.pred, 0);
  EXPECT_EQ(s.pred_norm, 1);
  EXPECT_EQ(s.pred_bytes, 1);
  EXPECT_EQ(s.acc, 0);
  EXPECT_EQ(s.acc_norm, 1);
  // Chars and bytes disagree: -1.9/5 = -0.38 vs -1/2 = -0.5 by chars (1 wins), -1.9/6 = -0.317 by
  // bytes (1 wins). Make bytes flip: -2.8/5 = -0.56 < -0.5 (0 wins); -2.8/6 = -0.467 > -0.5 (1).
  s = score_item(it, {-1.0, -2.8});
  EXPECT_EQ(s.pred_norm, 0);
  EXPECT_EQ(s.pred_bytes, 1);
  // Ties go to the first maximum (numpy.argmax).
  it.choices = {"x", "y"};
  EXPECT_EQ(score_item(it, {-1.0, -1.0}).pred, 0);
  EXPECT_THROW(score_item(it, {-1.0}), ConfigError);
}

TEST(Tasks, StandardErrorsMatchLmEval) {
  // mean_stderr([1, 0, 1, 1]): squared deviations 3 * 0.0625 + 0.5625 = 0.75, sample variance
  // 0.75 / 3 = 0.25, stddev 0.5, / sqrt(4) = 0.25 (as lm-eval's sample_stddev / sqrt(n)).
  MetricValue m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  EXPECT_NEAR(m.stderr_, 0.25, 1e-15);
  EXPECT_TRUE(std::isnan(mean_stderr({1}).stderr_));
  // pooled_sample_stderr: sqrt(sum((n_i - 1) se_i^2 n_i) / (N - k) / N), size-weighted mean.
  MetricValue a = mean_stderr({1, 0, 1, 1}), b = mean_stderr({0, 0, 1});
  MetricValue p = pooled({a, b}, {4, 3});
  EXPECT_NEAR(p.mean, (3.0 + 1.0) / 7.0, 1e-15);
  const double var = (3 * a.stderr_ * a.stderr_ * 4 + 2 * b.stderr_ * b.stderr_ * 3) / (7 - 2);
  EXPECT_NEAR(p.stderr_, std::sqrt(var / 7), 1e-15);
}

TEST(Tasks, ConfigErrorsNameFileAndLine) {
  TempDir t;
  const std::string ok = "task: x\nreader: jsonl\npath: x.jsonl\ntext: \"{q}\"\nchoices: [a, b]\n"
                         "gold_field: g\n";
  EXPECT_NO_THROW(load_task_config(t.write("ok.yaml", ok)));
  std::string f = t.write("unknown.yaml", ok + "txet: oops\n");
  std::string msg = message_of([&] { load_task_config(f); });
  EXPECT_NE(msg.find("unknown.yaml:7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("txet"), std::string::npos) << msg;
  EXPECT_THROW(load_task_config(t.write("nogold.yaml", "task: x\nreader: jsonl\npath: p\n"
                                                       "text: t\nchoices: [a]\n")),
               ConfigError);
  EXPECT_THROW(load_task_config(t.write("reader.yaml", "task: x\nreader: parquet\npath: p\n"
                                                       "text: t\nchoices: [a]\ngold_field: g\n")),
               ConfigError);
  EXPECT_THROW(load_task_config(t.write("both.yaml", ok + "choices_field: c\n")), ConfigError);
  EXPECT_THROW(load_task_config(t.write("filter.yaml", ok + "text_filter: upper\n")), ConfigError);
  EXPECT_THROW(load_task_config(t.write("shots.yaml", ok + "num_fewshot: 2\n")), ConfigError);
  EXPECT_THROW(load_task_config(t.write("regex.yaml", ok + "derive: [{field: q, regex: '(a'}]\n")),
               ConfigError);
  EXPECT_THROW(load_task_config(t.write("noname.yaml", ok + "derive: [{field: q, regex: '(a)'}]\n")),
               ConfigError);
  msg = message_of([&] { load_task_config(t.write("bad.yaml", "task: [x\n")); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_THROW(load_task_config((t.path / "absent.yaml").string()), IoError);
}

TEST(Tasks, ReadersCheckTheirInput) {
  TempDir t;
  // CSV: quotes, commas and newlines inside fields; the record's first line in messages.
  t.write("c/a_test.csv", "question,answer\n\"two\nlines, \"\"quoted\"\"\",1\nplain,0\n");
  t.write("c/b_test.csv", "question,answer\nq,2\n");
  ReaderOptions o{"csv", "c", "_test.csv", "", 0};
  auto docs = read_task_data(o, t.path.string());
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(std::get<std::string>(docs[0].fields["question"]), "two\nlines, \"quoted\"");
  EXPECT_EQ(std::get<std::string>(docs[0].fields["subtask"]), "a");
  EXPECT_EQ(std::get<std::string>(docs[2].fields["subtask"]), "b");
  EXPECT_EQ(docs[1].where, (t.path / "c/a_test.csv").string() + ":4");
  o.limit = 1;
  EXPECT_EQ(read_task_data(o, t.path.string()).size(), 2u);  // first doc of each subtask
  t.write("bad/x_test.csv", "question,answer\nq,1,extra\n");
  std::string msg = message_of([&] { read_task_data({"csv", "bad", "_test.csv", "", 0}, t.path.string()); });
  EXPECT_NE(msg.find("x_test.csv:2"), std::string::npos) << msg;
  t.write("open/x_test.csv", "question,answer\n\"never closed,1\n");
  EXPECT_THROW(read_task_data({"csv", "open", "_test.csv", "", 0}, t.path.string()), IoError);
  // JSONL: malformed line named; labels file must match the documents.
  t.write("a.jsonl", "{\"q\": \"x\", \"n\": 3, \"l\": [\"a\", \"b\"], \"o\": {\"k\": true}}\n\n{oops\n");
  msg = message_of([&] { read_task_data({"jsonl", "a.jsonl", "", "", 0}, t.path.string()); });
  EXPECT_NE(msg.find("a.jsonl:3"), std::string::npos) << msg;
  t.write("b.jsonl", "{\"q\": \"x\", \"n\": 3, \"l\": [\"a\", \"b\"], \"o\": {\"k\": true}}\n");
  docs = read_task_data({"jsonl", "b.jsonl", "", "", 0}, t.path.string());
  EXPECT_EQ(std::get<std::string>(docs[0].fields["n"]), "3");
  EXPECT_EQ(std::get<std::vector<std::string>>(docs[0].fields["l"]).size(), 2u);
  EXPECT_EQ(std::get<std::string>(docs[0].fields["o.k"]), "1");
  t.write("labels.lst", "0\n1\n");
  EXPECT_THROW(read_task_data({"jsonl", "b.jsonl", "", "labels.lst", 0}, t.path.string()), IoError);
  EXPECT_THROW(read_task_data({"jsonl", "missing.jsonl", "", "", 0}, t.path.string()), IoError);
  // HellaSwag text: ctx_b is the trailing lowercase fragment; WikiHow-style contexts keep it empty.
  t.write("h.txt",
          "Roof shingle removal: A man is sitting on a roof. he\n3\na\nb\nc\nd\n"
          "Family Life: How to entertain a toddler. Ask the toddler what to do.\n0\na\nb\nc\nd\n");
  docs = read_task_data({"hellaswag_txt", "h.txt", "", "", 0}, t.path.string());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(std::get<std::string>(docs[0].fields["ctx_a"]), "A man is sitting on a roof.");
  EXPECT_EQ(std::get<std::string>(docs[0].fields["ctx_b"]), "he");
  EXPECT_EQ(std::get<std::string>(docs[1].fields["ctx_b"]), "");
  t.write("h5.txt", "A: b\n0\na\nb\nc\n");
  EXPECT_THROW(read_task_data({"hellaswag_txt", "h5.txt", "", "", 0}, t.path.string()), IoError);
  // LLM-Adapters ARC instructions back into question + choices.
  t.write("arc.json",
          R"([{"instruction": "Please choose the correct answer to the question: Which one? Pick.\n\n)"
          R"(Answer1: red Answer2: a b c Answer3: 4\n\nAnswer format: answer1/answer2/answer3",)"
          R"( "input": "", "output": "", "answer": "answer2"}])");
  docs = read_task_data({"llm_adapters_mc", "arc.json", "", "", 0}, t.path.string());
  EXPECT_EQ(std::get<std::string>(docs[0].fields["question"]), "Which one? Pick.");
  EXPECT_EQ(std::get<std::vector<std::string>>(docs[0].fields["choices"]),
            (std::vector<std::string>{"red", "a b c", "4"}));
  EXPECT_EQ(std::get<std::string>(docs[0].fields["label"]), "1");
  t.write("arc_bad.json",
          R"([{"instruction": "Please choose the correct answer to the question: Q\n\nAnswer1: a)"
          R"( Answer2: b\n\nAnswer format: answer1/answer2", "answer": "answer7"}])");
  EXPECT_THROW(read_task_data({"llm_adapters_mc", "arc_bad.json", "", "", 0}, t.path.string()),
               IoError);
}

TEST(Tasks, ItemsFollowLmEvalPromptConstruction) {
  TempDir t;
  // MMLU-shaped: description, first-n few-shot examples of the same subject, " A" .. " D".
  t.write("d/test/alg_test.csv", "question,choice0,choice1,choice2,choice3,answer\n Q? ,w,x,y,z,2\n");
  t.write("d/dev/alg_dev.csv",
          "question,choice0,choice1,choice2,choice3,answer\nS1,a,b,c,d,0\nS2,a,b,c,d,3\nS3,a,b,c,d,1\n");
  t.write("d/dev/other_dev.csv", "question,choice0,choice1,choice2,choice3,answer\nO,a,b,c,d,0\n");
  const std::string y = t.write("m.yaml", R"(task: m
reader: csv
path: test
file_suffix: _test.csv
fewshot_path: dev
fewshot_file_suffix: _dev.csv
num_fewshot: 2
description: "About {subtask|underscores_to_spaces}.\n\n"
text: "{question|strip}\nA. {choice0}\nB. {choice1}\nC. {choice2}\nD. {choice3}\nAnswer:"
choices: ["A", "B", "C", "D"]
gold_field: answer
)");
  TaskConfig c = load_task_config(y);
  const std::string data = (t.path / "d").string();
  auto items = make_items(c, read_docs(c, data), read_fewshot_docs(c, data));
  ASSERT_EQ(items.size(), 1u);
  const std::string shot = "\nA. a\nB. b\nC. c\nD. d\nAnswer:";
  EXPECT_EQ(items[0].contexts[0], "About alg.\n\nS1" + shot + " A\n\nS2" + shot + " D\n\n" +
                                      "Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:");
  EXPECT_EQ(items[0].continuations, (std::vector<std::string>{" A", " B", " C", " D"}));
  EXPECT_EQ(items[0].gold, 2);
  c.num_fewshot = 4;  // only 3 dev rows
  EXPECT_THROW(make_items(c, read_docs(c, data), read_fewshot_docs(c, data)), IoError);
  // WinoGrande-shaped multiple input: contexts per choice, one continuation, choices = contexts.
  t.write("w.jsonl", R"({"context_options": ["A so B", "A so C"], "continuation": "ran. ", "gold": 1})");
  const std::string wy = t.write("w.yaml", "task: w\nreader: jsonl\npath: w.jsonl\n"
                                           "contexts_field: context_options\n"
                                           "continuation: \"{continuation|strip}\"\ngold_field: gold\n");
  TaskConfig w = load_task_config(wy);
  auto wi = make_items(w, read_docs(w, t.path.string()), {});
  EXPECT_EQ(wi[0].contexts, (std::vector<std::string>{"A so B", "A so C"}));
  EXPECT_EQ(wi[0].continuations, (std::vector<std::string>{" ran.", " ran."}));
  EXPECT_EQ(wi[0].gold, 1);
  // Derived fields (BoolQ's passage / question) and gold range checks.
  t.write("b.jsonl", "{\"query\": \"Passage: P1\\nP2\\nQuestion: is it?\", \"gold\": 1}\n"
                     "{\"query\": \"no match\", \"gold\": 0}\n");
  const std::string by = t.write("b.yaml", R"(task: b
reader: jsonl
path: b.jsonl
derive: [{field: query, regex: '\APassage: (?<passage>.*)\nQuestion: (?<question>.*)\?\z'}]
text: "{passage}\nQuestion: {question}?\nAnswer:"
choices: ["no", "yes"]
gold_field: gold
)");
  TaskConfig b = load_task_config(by);
  EXPECT_THROW(read_docs(b, t.path.string()), IoError);  // line 2 does not match
  auto bd = read_docs(b, t.path.string(), 1);
  EXPECT_EQ(make_item(b, bd[0], {}).contexts[0], "P1\nP2\nQuestion: is it?\nAnswer:");
  bd[0].fields["gold"] = std::string("2");
  EXPECT_THROW(make_item(b, bd[0], {}), IoError);
}

TEST(Tasks, RequestsTokenizeLikeLmEval) {
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
  std::vector<int64_t> whole = enc("Question: why?\nAnswer: because");
  EXPECT_EQ(r.continuation, std::vector<int64_t>(whole.begin() + r.context.size(), whole.end()));
  // Trailing whitespace of the context moves to the continuation.
  LoglikRequest s = encode_request(*tok, 1, "Answer: ", "yes");
  EXPECT_EQ(s.context, enc("Answer:"));
  EXPECT_EQ(s.continuation, encode_request(*tok, 1, "Answer:", " yes").continuation);
  // Empty context: BOS is the context.
  LoglikRequest e = encode_request(*tok, 1, "", "hello");
  EXPECT_EQ(e.context, std::vector<int64_t>{1});
  EXPECT_EQ(e.continuation.size() + 1, enc("hello").size());
}

TEST(Tasks, ShippedTaskFilesReadTheSharedData) {
  // Every task in configs/tasks loads and reads the full local split with the expected size.
  JNAS_REQUIRE_FILE(shared_path("data/tasks/boolq/boolq.jsonl"));
  const std::map<std::string, size_t> sizes = {
      {"boolq", 3270},     {"piqa", 1838},          {"hellaswag", 10042}, {"winogrande", 1267},
      {"arc_easy", 2376},  {"arc_challenge", 1172}, {"mmlu", 14042},      {"mmlu_5shot", 14042}};
  for (const auto& [name, n] : sizes) {
    TaskConfig c = load_task_config(repo_path("configs/tasks/" + name + ".yaml"));
    auto docs = read_docs(c, shared_path("data/tasks"));
    EXPECT_EQ(docs.size(), n) << name;
    auto items = make_items(c, std::vector<Doc>(docs.begin(), docs.begin() + 3),
                            read_fewshot_docs(c, shared_path("data/tasks")));
    EXPECT_EQ(items.size(), 3u) << name;
  }
}
