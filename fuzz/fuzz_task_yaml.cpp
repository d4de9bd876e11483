// Fuzz target: an lm-eval task YAML (configs/tasks/*.yaml; eval::load_task_config), then what
// `jointnas eval tasks` does with it before the model runs: read its data (a small JSON Lines
// file in the scratch data directory; paths must stay inside it), process_docs, the Jinja
// templates of doc_to_text / doc_to_target / doc_to_choice / description, few-shot contexts and
// the requests of every document.
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/eval/task_instances.h"

using namespace jointnas;

namespace {

// Documents in the shapes the standard tasks use, so that templates of each find their fields.
constexpr const char* kData =
    "{\"question\": \"Which gas?\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, "
    "\"answerKey\": \"B\", \"label\": 1, \"text\": \"one two three\", \"page\": \" = T = \\n x @-@ y \\n\", "
    "\"sentence\": \"A _ b.\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\", \"premise\": \"P.\", "
    "\"choice1\": \"C\", \"choice2\": \"D\", \"activity_label\": \"L\", \"ctx_a\": \"a.\", \"ctx_b\": \"b\", "
    "\"endings\": [\"e [x]\", \"f\"], \"subject\": \"s_t\"}\n"
    "{\"question\": \"  Q2\\u0085\", \"choices\": [\"0\", \"1\", \"2\", \"3\"], \"answer\": 3, \"label\": \"2\", "
    "\"text\": \"x\", \"page\": \"p\", \"goal\": \"g\", \"sol1\": \"s\", \"sol2\": \"t\"}\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fuzz::ScratchDir dir;
  static const std::string data_dir = [] {
    const std::string d = dir.path() + "/data";
    ::mkdir(d.c_str(), 0700);
    dir.write("data/d.jsonl", kData);
    dir.write("data/train.jsonl", kData);
    dir.write("outside.jsonl", kData);
    return d;
  }();
  const std::string path = dir.write("task.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_accept_or_reject([&] {
    const eval::TaskConfig cfg = eval::load_task_config(path);
    const auto instances = eval::load_instances(cfg, data_dir, /*limit=*/2);
    for (const auto& in : instances) {
      if (cfg.output_type == eval::OutputType::kMultipleChoice &&
          (in.contexts.size() != in.choices.size() || in.continuations.size() != in.choices.size() || in.golds.empty())) {
        fuzz::fail("a multiple-choice instance without one request per choice and a gold");
      }
      if (in.continuations.empty()) fuzz::fail("an instance without requests");
      (void)Json(in.contexts).dump();  // every text is UTF-8 (nlohmann would throw type_error 316)
      (void)Json(in.continuations).dump();
    }
  });
  return 0;
}
