// The Python hooks of lm-eval's standard tasks (`!function module.function` in their YAML) as
// built-ins, one table row per hook: a YAML names a hook exactly as lm-eval's does, and the row
// applies when the task belongs to the hook's family (its name is the family or starts with
// "<family>_"), since `utils.process_docs` means different code in different task folders.
//   hellaswag   utils.process_docs                        (hellaswag/utils.py)
//   winogrande  preprocess_winogrande.doc_to_text / doc_to_target / doc_to_choice
//   copa        utils.doc_to_text / doc_to_target / doc_to_choice   (super_glue/copa/utils.py)
//   wikitext    preprocess_wikitext.wikitext_detokenizer / process_results
// Each is a line-by-line port of lm-eval 0.4.13's Python. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::eval {

enum class HookRole { kProcessDocs, kDocFn, kProcessResults };

// Whether a built-in implements `fn` in `role` for task `task` (ConfigError naming `where` when
// not, listing the built-ins).
void check_builtin(const std::string& task, HookRole role, const std::string& fn,
                   const std::string& where);

// process_docs: returns the processed document (the hooks of the standard tasks map one
// document to one).
Json builtin_process_doc(const std::string& task, const std::string& fn, const Json& doc);
// doc_to_text / doc_to_target / doc_to_choice: a str, an int or a list.
Json builtin_doc_fn(const std::string& task, const std::string& fn, const Json& doc);
// process_results for loglikelihood_rolling: per metric, (loglikelihood, weight).
struct WeightedItem {
  double ll = 0;
  double weight = 0;
};
std::vector<std::pair<std::string, WeightedItem>> builtin_process_results(const std::string& task,
                                                                          const std::string& fn,
                                                                          const Json& doc, double ll);

// len(re.split(r"\s+", text)): lm-eval's count_words (rolling loglikelihood word counts).
int64_t count_words(const std::string& text);
// lm-eval's hellaswag preprocess and wikitext detokenizer (exposed for tests).
std::string hellaswag_preprocess(const std::string& text);
std::string wikitext_detokenize(const std::string& page);

}  // namespace jointnas::eval
