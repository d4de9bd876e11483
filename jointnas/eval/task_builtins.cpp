// Built-in ports of the standard tasks' Python hooks (see task_builtins.h). Sources: lm-eval
// 0.4.13 tasks/hellaswag/utils.py, tasks/winogrande/preprocess_winogrande.py,
// tasks/super_glue/copa/utils.py, tasks/wikitext/preprocess_wikitext.py.
#include "jointnas/eval/task_builtins.h"

#include <functional>

#include "jointnas/core/error.h"
#include "jointnas/eval/pyre.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval {
namespace {

using py::PyError;

const Json& field(const Json& doc, const char* key) {
  if (!doc.is_object() || !doc.contains(key)) throw PyError(fmt::format("KeyError: '{}'", key));
  return doc[key];
}
const std::string& str_field(const Json& doc, const char* key) {
  const Json& v = field(doc, key);
  if (!v.is_string()) {
    throw PyError(fmt::format("TypeError: field '{}' is {}, the hook needs str", key, py::type_name(v)));
  }
  return v.get_ref<const std::string&>();
}

// ---------------------------------------------------------------- hellaswag
Json hellaswag_process_doc(const Json& doc) {
  // ctx = ctx_a + " " + ctx_b.capitalize(); query = preprocess(activity_label + ": " + ctx);
  // choices = [preprocess(e) for e in endings]; gold = int(label). dataset.map keeps the old
  // columns and adds these.
  const std::string ctx = str_field(doc, "ctx_a") + " " + py::capitalize(str_field(doc, "ctx_b"));
  Json out = doc;
  out["query"] = hellaswag_preprocess(str_field(doc, "activity_label") + ": " + ctx);
  Json choices = Json::array();
  const Json& endings = field(doc, "endings");
  if (!endings.is_array()) throw PyError("TypeError: field 'endings' must be a list");
  for (const auto& e : endings) {
    if (!e.is_string()) throw PyError("TypeError: an ending is not a str");
    choices.push_back(hellaswag_preprocess(e.get<std::string>()));
  }
  out["choices"] = std::move(choices);
  const Json& label = field(doc, "label");
  const std::string ls = label.is_string() ? py::strip(label.get<std::string>()) : py::str(label);
  if (!(label.is_number_integer() || py::is_digit_string(ls))) {
    throw PyError(fmt::format("ValueError: invalid literal for int(): {}", py::repr(label)));
  }
  out["gold"] = label.is_number_integer() ? label.get<int64_t>() : std::stoll(ls);
  return out;
}

// ---------------------------------------------------------------- winogrande
Json winogrande_doc_to_text(const Json& doc) {
  const std::string& a = str_field(doc, "answer");
  if (a == "1") return 0;
  if (a == "2") return 1;
  throw PyError(fmt::format("KeyError: {}", py::repr(Json(a))));
}

size_t underscore_index(const std::string& sentence) {
  const size_t idx = sentence.find('_');
  if (idx == std::string::npos) throw PyError("ValueError: substring not found ('_' in sentence)");
  return idx;
}

Json winogrande_doc_to_target(const Json& doc) {
  const std::string& s = str_field(doc, "sentence");
  return py::strip(s.substr(underscore_index(s) + 1));
}

Json winogrande_doc_to_choice(const Json& doc) {
  const std::string& s = str_field(doc, "sentence");
  const std::string head = s.substr(0, underscore_index(s));
  return Json::array({head + str_field(doc, "option1"), head + str_field(doc, "option2")});
}

// ---------------------------------------------------------------- copa (super_glue)
std::string copa_convert_choice(const std::string& choice) {
  // choice[0].lower() + choice[1:]
  const auto cps = py::code_points(choice);
  if (cps.empty()) throw PyError("IndexError: string index out of range (empty choice)");
  return py::lower(py::from_code_points(cps, 0, 1)) + py::from_code_points(cps, 1, cps.size());
}

Json copa_doc_to_text(const Json& doc) {
  const std::string& q = str_field(doc, "question");
  const char* connector = q == "cause" ? "because" : q == "effect" ? "therefore" : nullptr;
  if (connector == nullptr) throw PyError(fmt::format("KeyError: {}", py::repr(Json(q))));
  const std::string premise = py::strip(str_field(doc, "premise"));
  const auto cps = py::code_points(premise);
  // premise.strip()[:-1]: drop the final character (the period).
  return py::from_code_points(cps, 0, cps.empty() ? 0 : cps.size() - 1) + " " + connector;
}

Json copa_doc_to_target(const Json& doc) {
  const Json& label = field(doc, "label");
  const bool first = py::equal(label, Json(0));
  return " " + copa_convert_choice(str_field(doc, first ? "choice1" : "choice2"));
}

Json copa_doc_to_choice(const Json& doc) {
  return Json::array({" " + copa_convert_choice(str_field(doc, "choice1")),
                      " " + copa_convert_choice(str_field(doc, "choice2"))});
}

// ---------------------------------------------------------------- wikitext
Json wikitext_doc_fn(const Json& doc) { return wikitext_detokenize(str_field(doc, "page")); }

struct Row {
  const char* family;
  HookRole role;
  const char* fn;
  std::function<Json(const Json&)> apply;
};

const std::vector<Row>& rows() {
  static const std::vector<Row> kRows = {
      {"hellaswag", HookRole::kProcessDocs, "utils.process_docs", hellaswag_process_doc},
      {"winogrande", HookRole::kDocFn, "preprocess_winogrande.doc_to_text", winogrande_doc_to_text},
      {"winogrande", HookRole::kDocFn, "preprocess_winogrande.doc_to_target", winogrande_doc_to_target},
      {"winogrande", HookRole::kDocFn, "preprocess_winogrande.doc_to_choice", winogrande_doc_to_choice},
      {"copa", HookRole::kDocFn, "utils.doc_to_text", copa_doc_to_text},
      {"copa", HookRole::kDocFn, "utils.doc_to_target", copa_doc_to_target},
      {"copa", HookRole::kDocFn, "utils.doc_to_choice", copa_doc_to_choice},
      {"wikitext", HookRole::kDocFn, "preprocess_wikitext.wikitext_detokenizer", wikitext_doc_fn},
      {"wikitext", HookRole::kProcessResults, "preprocess_wikitext.process_results", nullptr},
  };
  return kRows;
}

bool in_family(const std::string& task, const std::string& family) {
  return task == family || task.rfind(family + "_", 0) == 0;
}

const Row* find_row(const std::string& task, HookRole role, const std::string& fn) {
  for (const auto& r : rows()) {
    if (r.role == role && fn == r.fn && in_family(task, r.family)) return &r;
  }
  return nullptr;
}

std::string list_rows() {
  std::string s;
  for (const auto& r : rows()) s += fmt::format("{}{}: {}", s.empty() ? "" : "; ", r.family, r.fn);
  return s;
}

}  // namespace

int64_t count_words(const std::string& text) {
  return static_cast<int64_t>(py::re_split("\\s+", text).size());
}

std::string hellaswag_preprocess(const std::string& text) {
  // text.strip(); .replace(" [title]", ". "); re.sub("\\[.*?\\]", "", text); .replace("  ", " ")
  std::string t = py::replace(py::strip(text), " [title]", ". ");
  t = py::re_sub("\\[.*?\\]", "", t);
  return py::replace(t, "  ", " ");
}

std::string wikitext_detokenize(const std::string& page) {
  std::string s = page;
  s = py::replace(s, "s '", "s'");
  s = py::re_sub("/' [0-9]/", "/'[0-9]/", s);
  for (const auto& [a, b] : {std::pair<const char*, const char*>{" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."},
                             {" : ", ": "}, {" ; ", "; "}, {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "},
                             {" , ", ", "}}) {
    s = py::replace(s, a, b);
  }
  s = py::re_sub("\\(\\s*([^\\)]*?)\\s*\\)", "(\\1)", s);
  s = py::re_sub("\\[\\s*([^\\]]*?)\\s*\\]", "[\\1]", s);
  s = py::re_sub("{\\s*([^}]*?)\\s*}", "{\\1}", s);
  s = py::re_sub("\\\"\\s*([^\\\"]*?)\\s*\\\"", "\"\\1\"", s);
  s = py::re_sub("'\\s*([^']*?)\\s*'", "'\\1'", s);
  for (const auto& [a, b] : {std::pair<const char*, const char*>{"= = = =", "===="}, {"= = =", "==="},
                             {"= =", "=="}, {" \u00b0 ", "\u00b0"}, {" \n", "\n"}, {"\n ", "\n"},
                             {" N ", " 1 "}, {" 's", "'s"}}) {
    s = py::replace(s, a, b);
  }
  return s;
}

void check_builtin(const std::string& task, HookRole role, const std::string& fn, const std::string& where) {
  if (find_row(task, role, fn) != nullptr) return;
  throw ConfigError(fmt::format("{}: no built-in for '!function {}' in task '{}' (jointnas runs no Python; "
                                "built-ins by task family: {})",
                                where, fn, task, list_rows()),
                    "write the hook as a Jinja template, or use a task of the family the hook belongs to");
}

Json builtin_process_doc(const std::string& task, const std::string& fn, const Json& doc) {
  const Row* r = find_row(task, HookRole::kProcessDocs, fn);
  JNAS_CHECK_CONFIG(r != nullptr, "no built-in process_docs '{}' for task '{}'", fn, task);
  return r->apply(doc);
}

Json builtin_doc_fn(const std::string& task, const std::string& fn, const Json& doc) {
  const Row* r = find_row(task, HookRole::kDocFn, fn);
  JNAS_CHECK_CONFIG(r != nullptr, "no built-in '{}' for task '{}'", fn, task);
  return r->apply(doc);
}

std::vector<std::pair<std::string, WeightedItem>> builtin_process_results(const std::string& task,
                                                                          const std::string& fn,
                                                                          const Json& doc, double ll) {
  JNAS_CHECK_CONFIG(find_row(task, HookRole::kProcessResults, fn) != nullptr,
                    "no built-in process_results '{}' for task '{}'", fn, task);
  // wikitext: words and bytes of the original page, before detokenization.
  const std::string& page = str_field(doc, "page");
  const double n_words = static_cast<double>(count_words(page));
  const double n_bytes = static_cast<double>(page.size());
  return {{"word_perplexity", {ll, n_words}}, {"byte_perplexity", {ll, n_bytes}}, {"bits_per_byte", {ll, n_bytes}}};
}

}  // namespace jointnas::eval
