// Fuzz target: local task data (eval::read_data_file), every reader: the first byte picks the
// reader (json, jsonl, csv, and the ../shared layouts: llm-foundry boolq / winogrande, llama.cpp
// HellaSwag text, LLM-Adapters ARC, an MMLU CSV directory, wikitext raw), the rest is the file.
// Accepted documents must be JSON objects whose text is UTF-8 (they go into results JSON).
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/eval/task_data.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kReaders[] = {"json", "jsonl", "csv", "llm_foundry_boolq", "llm_foundry_winogrande",
                                   "hellaswag_txt", "llm_adapters_arc", "mmlu_csv_dir", "wikitext_raw"};
  static const fuzz::ScratchDir dir;
  static const bool made = [] {
    ::mkdir((dir.path() + "/mmlu").c_str(), 0700);
    ::mkdir((dir.path() + "/mmlu/test").c_str(), 0700);
    return true;
  }();
  (void)made;
  if (size == 0) return 0;
  const std::string reader = kReaders[data[0] % (sizeof(kReaders) / sizeof(kReaders[0]))];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string path;
  if (reader == "mmlu_csv_dir") {
    dir.write("mmlu/test/subject_test.csv", body);
    path = dir.path() + "/mmlu/test";
  } else {
    path = dir.write("data.txt", body);
  }
  fuzz::expect_accept_or_reject([&] {
    for (const auto& d : eval::read_data_file(reader, path)) {
      if (!d.fields.is_object()) fuzz::fail("a document that is not a JSON object");
      (void)d.fields.dump();  // throws type_error 316 on invalid UTF-8: a bug, not a rejection
    }
  });
  return 0;
}
