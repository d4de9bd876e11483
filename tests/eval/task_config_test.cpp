// lm-eval task YAML reading (errors name the file and the key), local data readers (each layout
// into its dataset's HF schema; malformed data named by file:line) and the confinement of task
// data paths to the data directory.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/eval/task_config.h"
#include "jointnas/eval/task_data.h"
#include "jointnas/eval/task_eval.h"
#include "tensor_assert.h"

using namespace jointnas;
using namespace jointnas::eval;
using jointnas::testing::fixture_path;
using jointnas::testing::repo_path;
using jointnas::testing::shared_path;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("jnas_taskcfg_" + std::to_string(::getpid()) + "_" +
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

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kMc =
    "task: t\noutput_type: multiple_choice\ndataset_path: json\ntest_split: test\n"
    "dataset_kwargs: {data_files: {test: d.jsonl}}\n"
    "doc_to_text: \"Q: {{q}}\"\ndoc_to_target: label\ndoc_to_choice: [\"no\", \"yes\"]\n";

}  // namespace

// Acceptance 3: every error names the task file and the key (and the line where YAML has one).
TEST(TaskConfig, ErrorsNameTheFileAndTheKey) {
  TempDir t;
  EXPECT_NO_THROW(load_task_config(t.write("ok.yaml", kMc)));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string(kMc) + "colour: red\n", "colour"},
      {std::string(kMc) + "generation_kwargs: {until: [x]}\n", "generation_kwargs"},
      {std::string(kMc) + "filter_list: []\n", "filter_list"},
      {std::string(kMc) + "num_fewshot: many\n", "num_fewshot"},
      {std::string(kMc) + "metric_list: [{metric: bleu}]\n", "metric_list"},
      {std::string(kMc) + "metric_list: [{metric: acc, aggregation: median}]\n", "metric_list.aggregation"},
      {std::string(kMc) + "process_results: !function utils.process_results\n", "process_results"},
      {std::string(kMc) + "fewshot_config: {sampler: balanced}\n", "fewshot_config.sampler"},
      {std::string(kMc) + "description: [x]\n", "description"},
      {std::string(kMc) + "local_data: {test: {reader: parquet, path: x}}\n", "local_data.test"},
      {std::string(kMc) + "include: ../elsewhere.yaml\n", "include"},
      {std::string(kMc) + "repeats: 4\n", "repeats"},
      {"task: t\noutput_type: generate_until\n", "output_type"},
      {"task: [a, b]\ngroup: g\n", "task"},
      {"task: t\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: x\ndoc_to_target: y\n",
       "doc_to_choice"},
      {"task: t\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: \"{{ x \"\n"
       "doc_to_target: y\ndoc_to_choice: z\n", "doc_to_text"},
      {"task: t\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: x\ndoc_to_target: y\n"
       "doc_to_choice: \"{{ x | shout }}\"\n", "doc_to_choice"},
      {"task: mine\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: !function utils.doc_to_text\n"
       "doc_to_target: y\ndoc_to_choice: z\n", "doc_to_text"},
      {"task: t\noutput_type: loglikelihood\ntest_split: test\ndoc_to_target: y\n", "doc_to_text"},
      {"task: t\noutput_type: multiple_choice\ndoc_to_text: x\ndoc_to_target: y\ndoc_to_choice: z\n",
       "split"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string file = t.write("bad" + std::to_string(i) + ".yaml", cases[i].first);
    const std::string m = message_of([&] { load_task_config(file); });
    SCOPED_TRACE(cases[i].first);
    ASSERT_FALSE(m.empty()) << "accepted";
    EXPECT_NE(m.find(file), std::string::npos) << m;
    EXPECT_NE(m.find(cases[i].second), std::string::npos) << m;
  }
  EXPECT_THROW(load_task_config(t.write("bad.yaml", "task: [x\n")), ConfigError);
  EXPECT_THROW(load_task_config((t.path / "absent.yaml").string()), IoError);
  // include: merges lm-eval style (the included file first, own keys override).
  t.write("base.yaml", kMc);
  const TaskConfig c = load_task_config(t.write("child.yaml", "include: base.yaml\ntask: child\ntarget_delimiter: \"\"\n"));
  EXPECT_EQ(c.task, "child");
  EXPECT_EQ(c.target_delimiter, "");
  EXPECT_EQ(c.splits.at("test").paths, std::vector<std::string>{"d.jsonl"});
}

// Issue 26: a task file's data paths stay inside the data directory.
TEST(TaskData, PathsAreConfinedToTheDataDirectory) {
  TempDir t;
  t.write("data/ok.jsonl", "{\"q\": \"a\", \"label\": 1}\n");
  t.write("secret.jsonl", "{\"q\": \"s\", \"label\": 0}\n");
  fs::create_symlink(t.path / "secret.jsonl", t.path / "data" / "link.jsonl");
  const std::string data = (t.path / "data").string();
  auto load = [&](const std::string& rel) {
    const std::string y = std::string(kMc).replace(std::string(kMc).find("d.jsonl"), 7, rel);
    const std::string file = t.write("t.yaml", y);
    TaskEvalOptions o;
    o.data_dir = data;
    return load_instances(load_task_config(file), o);
  };
  EXPECT_EQ(load("ok.jsonl").size(), 1u);
  for (const std::string& bad : std::vector<std::string>{"../secret.jsonl", "link.jsonl", (t.path / "secret.jsonl").string(),
                                                         "./ok.jsonl", "a//ok.jsonl"}) {
    const std::string m = message_of([&] { load(bad); });
    EXPECT_NE(m.find("refusing task data path"), std::string::npos) << bad << ": " << m;
    EXPECT_NE(m.find("t.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find("dataset_kwargs.data_files.test"), std::string::npos) << m;
  }
  // A missing file names the task file, the key and the data directory, with a fix.
  try {
    load("absent.jsonl");
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(data), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("--data-dir"), std::string::npos);
  }
}

TEST(TaskData, ReadersReportFileAndLine) {
  TempDir t;
  const std::string jl = t.write("a.jsonl", "{\"x\": 1}\n\n{\"x\": \n");
  std::string m = message_of([&] { read_data_file("jsonl", jl); });
  EXPECT_NE(m.find(jl + ":3"), std::string::npos) << m;
  m = message_of([&] { read_data_file("json", t.write("b.json", "[{\"x\": 1}, 2]")); });
  EXPECT_NE(m.find("item 1"), std::string::npos) << m;
  m = message_of([&] { read_data_file("csv", t.write("c.csv", "a,b\n1,2\n3\n")); });
  EXPECT_NE(m.find("c.csv:3"), std::string::npos) << m;
  m = message_of([&] { read_data_file("jsonl", t.write("u.jsonl", "{\"x\": \"\xff\"}\n")); });
  EXPECT_NE(m.find("not UTF-8"), std::string::npos) << m;
  // load_dataset("csv") types: an all-integer column is int, a mixed one str, empty cells None.
  const auto docs = read_data_file("csv", t.write("d.csv", "n,s,f,e\n1,x,1.5,\n2,3,2,\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].fields["n"], Json(1));
  EXPECT_EQ(docs[1].fields["s"], Json("3"));
  EXPECT_EQ(docs[1].fields["f"], Json(2.0));
  EXPECT_TRUE(docs[0].fields["e"].is_null());
  // json accepts JSON Lines too, as load_dataset("json").
  EXPECT_EQ(read_data_file("json", t.write("e.json", "{\"x\": 1}\n{\"x\": 2}\n")).size(), 2u);
}

// The ../shared layouts read into each dataset's HF schema (the fields lm-eval's YAML uses).
TEST(TaskData, SharedLayoutsReadIntoTheHfSchema) {
  TempDir t;
  auto boolq = read_data_file("llm_foundry_boolq", t.write("b.jsonl",
      "{\"query\": \"Passage: P -- text.\\nQuestion: is it?\", \"gold\": 1}\n"));
  EXPECT_EQ(boolq[0].fields, Json::parse(R"({"passage": "P -- text.", "question": "is it", "label": 1})"));
  auto wino = read_data_file("llm_foundry_winogrande", t.write("w.jsonl",
      "{\"context_options\": [\"Sarah beat Maria so Sarah\", \"Sarah beat Maria so Maria\"], "
      "\"continuation\": \"won.\", \"gold\": 1}\n"));
  EXPECT_EQ(wino[0].fields, Json::parse(R"({"sentence": "Sarah beat Maria so _ won.", "option1": "Sarah",
                                            "option2": "Maria", "answer": "2"})"));
  auto arc = read_data_file("llm_adapters_arc", t.write("a.json",
      R"([{"instruction": "Please choose the correct answer to the question: Why?\n\nAnswer1: a Answer2: b c Answer3: d\n\nAnswer format: answer1/answer2/answer3", "answer": "answer2"}])"));
  EXPECT_EQ(arc[0].fields, Json::parse(R"({"question": "Why?", "choices": {"text": ["a", "b c", "d"],
                                           "label": ["A", "B", "C"]}, "answerKey": "B"})"));
  auto wiki = read_data_file("wikitext_raw", t.write("w.raw", " \n = A = \n x \n = = B = = \n y \n = C = \n z \n"));
  ASSERT_EQ(wiki.size(), 2u);  // "= = B = =" is a section, not a new article
  EXPECT_EQ(wiki[0].fields["page"], Json(" = A = \n x \n = = B = = \n y "));
  EXPECT_EQ(wiki[1].fields["page"], Json(" = C = \n z \n"));
  t.write("mmlu/test/algebra_test.csv", "question,choice0,choice1,choice2,choice3,answer\nq?,0,1,2,3,2\n");
  auto mmlu = read_data_file("mmlu_csv_dir", (t.path / "mmlu/test").string());
  EXPECT_EQ(mmlu[0].fields, Json::parse(R"({"question": "q?", "subject": "algebra",
                                            "choices": ["0", "1", "2", "3"], "answer": 2})"));
  EXPECT_EQ(mmlu[0].subtask, "algebra");
}

// Every shipped task file loads; those whose data are in ../shared read the full split.
TEST(TaskConfig, ShippedTaskFilesReadTheSharedData) {
  for (const auto& e : fs::directory_iterator(repo_path("configs/tasks"))) {
    if (e.path().extension() == ".yaml") {
      EXPECT_NO_THROW(load_task_config(e.path().string())) << e.path();
    }
  }
  JNAS_REQUIRE_FILE(shared_path("data/tasks/boolq/boolq.jsonl"));
  const std::map<std::string, size_t> sizes = {
      {"boolq", 3270},    {"piqa", 1838},          {"hellaswag", 10042}, {"winogrande", 1267},
      {"arc_easy", 2376}, {"arc_challenge", 1172}, {"mmlu", 14042},      {"wikitext", 62}};
  TaskEvalOptions o;
  o.data_dir = shared_path("data");
  for (const auto& [name, n] : sizes) {
    const TaskConfig c = load_task_config(repo_path("configs/tasks/" + name + ".yaml"));
    EXPECT_EQ(load_instances(c, o).size(), n) << name;
  }
  o.limit = 1;
  const auto five = load_instances(load_task_config(repo_path("configs/tasks/mmlu_5shot.yaml")), o);
  EXPECT_EQ(five.size(), 57u);  // one per subject
  EXPECT_NE(five[0].contexts[0].find("\n\n"), std::string::npos);
  // Tasks without local data say what is missing and how to give it.
  const std::string m = message_of([&] { load_instances(load_task_config(repo_path("configs/tasks/copa.yaml")), o); });
  EXPECT_NE(m.find("tasks/copa/val.jsonl"), std::string::npos) << m;
}

TEST(TaskData, DefaultDirectoriesComeFromTheProjectOrTheEnvironment) {
  const std::string root = find_project_root(repo_path("build/tools/jointnas/jointnas"));
  EXPECT_EQ(fs::canonical(root), fs::canonical(repo_path("")));
  ::unsetenv("JNAS_DATA_DIR");
  EXPECT_EQ(fs::path(default_data_dir(repo_path("build/x"))), (fs::path(root) / "../shared/data").lexically_normal());
  EXPECT_EQ(fs::path(default_task_dir(repo_path("build/x"))), fs::path(root) / "configs/tasks");
  ::setenv("JNAS_DATA_DIR", "/data/here", 1);
  EXPECT_EQ(default_data_dir(repo_path("build/x")), "/data/here");
  ::unsetenv("JNAS_DATA_DIR");
}
