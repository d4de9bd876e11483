// lm-eval's request construction (see task_instances.h). Reference: lm-eval 0.4.13
// api/task.py (doc_to_text 1200, doc_to_target 1236, doc_to_choice 1282, fewshot_context 933,
// build_qa_turn, multiple_input_context, construct_requests 1362, process_results 1455) and
// api/samplers.py (ContextSampler.sample, FirstNSampler.sample).
#include "jointnas/eval/task_instances.h"

#include <map>

#include "jointnas/core/error.h"
#include "jointnas/eval/py_random.h"
#include "jointnas/eval/pyvalue.h"
#include "jointnas/eval/task_builtins.h"

namespace jointnas::eval {
namespace {

constexpr uint64_t kFewshotSeed = 1234;  // lm-eval's default fewshot_random_seed

std::set<std::string> features_of(const std::vector<Doc>& docs) {
  std::set<std::string> f;
  for (const auto& d : docs) {
    for (const auto& [k, v] : d.fields.items()) f.insert(k);
  }
  return f;
}

const std::string& need_str(const Json& v, const std::string& what, const Doc& d) {
  JNAS_CHECK_CONFIG(v.is_string(), "{}: {} is {} ({}), expected a string", d.where, what, py::type_name(v),
                    py::repr(v).substr(0, 200));
  return v.get_ref<const std::string&>();
}

bool has_answer(const Json& a) { return !a.is_null() && !(a.is_string() && a.get<std::string>().empty()); }

// build_qa_turn(q, c, a, tgt_delim, few_delim) as plain text, without gen_prefix.
std::string qa_turn(const std::string& q, const Json& c, const Json& a, const std::string& tgt_delim,
                    const std::string& few_delim, const Doc& d) {
  if (!has_answer(a)) return q;
  Json answer;
  if (c.is_array() && !c.empty() && a.is_number_integer()) {
    answer = py::subscript(c, a);
  } else if (a.is_array()) {
    JNAS_CHECK_CONFIG(!a.empty(), "{}: few-shot target is an empty list", d.where);
    answer = a[0];
  } else {
    answer = a;
  }
  return q + tgt_delim + need_str(answer, "a few-shot answer", d) + few_delim;
}

// Few-shot examples for one document (api/samplers.py).
class Sampler {
 public:
  Sampler(const TaskConfig& cfg, const std::vector<Doc>& pool) : cfg_(cfg), pool_(pool), rnd_(kFewshotSeed) {}

  std::vector<const Doc*> sample(int64_t n, const Doc& doc) {
    if (n == 0) return {};
    JNAS_CHECK_IO(!pool_.empty(), "{}: {} few-shot examples requested, but split '{}' has none{}", cfg_.source,
                  n, cfg_.fewshot_pool_split(), doc.subtask.empty() ? "" : " for subtask '" + doc.subtask + "'");
    // lm-eval passes the evaluated document (to exclude it) when the few-shot split is the test
    // split, which includes both being unset.
    const bool exclude = cfg_.fewshot_split == cfg_.test_split;
    auto differs = [&](const Doc* x) { return !exclude || !py::equal(x->fields, doc.fields); };
    std::vector<const Doc*> out;
    if (cfg_.fewshot_sampler == "first_n") {
      for (const auto& x : pool_) {
        if (differs(&x)) out.push_back(&x);
      }
      JNAS_CHECK_IO(static_cast<int64_t>(out.size()) >= n, "{}: {} few-shot examples requested, {} available",
                    cfg_.source, n, out.size());
      out.resize(static_cast<size_t>(n));
      return out;
    }
    const size_t k = static_cast<size_t>(n) + (exclude ? 1 : 0);
    JNAS_CHECK_IO(k <= pool_.size(), "{}: {} few-shot examples requested, {} available", cfg_.source, n, pool_.size());
    for (size_t i : rnd_.sample(pool_.size(), k)) {
      if (differs(&pool_[i])) out.push_back(&pool_[i]);
    }
    if (out.size() > static_cast<size_t>(n)) out.resize(static_cast<size_t>(n));
    if (out.size() < static_cast<size_t>(n)) {
      std::vector<const Doc*> rest;
      for (const auto& x : pool_) {
        if (differs(&x)) rest.push_back(&x);
      }
      out.clear();
      for (size_t i : rnd_.sample(rest.size(), static_cast<size_t>(n))) out.push_back(rest[i]);
    }
    return out;
  }

 private:
  const TaskConfig& cfg_;
  const std::vector<Doc>& pool_;
  py::Random rnd_;
};

}  // namespace

Json apply_doc_fn(const DocFn& f, DocRole role, const Doc& doc, const std::set<std::string>& features,
                  const TaskConfig& cfg) {
  switch (f.kind) {
    case DocFn::kNone: return nullptr;
    case DocFn::kValue: return f.value;
    case DocFn::kBuiltin: {
      try {
        return builtin_doc_fn(cfg.task, f.builtin, doc.fields);
      } catch (const py::PyError& e) {
        throw ConfigError(fmt::format("{}: !function {} failed on {}: {}", f.where, f.builtin, doc.where, e.what()));
      }
    }
    case DocFn::kTemplate: break;
  }
  if (role == DocRole::kDescription) {
    if (doc.fields.contains(f.text)) return doc.fields[f.text];
    return f.tmpl->render(doc.fields, doc.where);
  }
  if (features.count(f.text)) return doc.fields.contains(f.text) ? doc.fields[f.text] : Json(nullptr);
  const std::string s = f.tmpl->render(doc.fields, doc.where);
  const bool has_choice = cfg.doc_to_choice.set();
  if (role == DocRole::kChoice) {
    try {
      return py::literal_eval(s);
    } catch (const py::PyError& e) {
      throw ConfigError(fmt::format("{}: the rendered doc_to_choice is not a Python literal list ({}) for {}",
                                    f.where, e.what(), doc.where));
    }
  }
  if (py::is_digit_string(s) && has_choice) {
    if (s.size() > 1 && s[0] == '0') {
      throw ConfigError(fmt::format("{}: '{}' is not a valid Python literal (leading zero) for {}", f.where, s, doc.where));
    }
    JNAS_CHECK_CONFIG(s.size() < 19, "{}: integer '{}' too large for {}", f.where, s, doc.where);
    return static_cast<int64_t>(std::stoll(s));
  }
  if (role == DocRole::kTarget && s.size() >= 2 && s.front() == '[' && s.back() == ']') {
    try {
      return py::literal_eval(s);
    } catch (const py::PyError&) {
      return s;
    }
  }
  return s;
}

void process_docs(const TaskConfig& cfg, std::vector<Doc>& docs) {
  if (!cfg.process_docs.set()) return;
  for (auto& d : docs) {
    try {
      d.fields = builtin_process_doc(cfg.task, cfg.process_docs.builtin, d.fields);
    } catch (const py::PyError& e) {
      throw ConfigError(fmt::format("{}: !function {} failed on {}: {}", cfg.process_docs.where,
                                    cfg.process_docs.builtin, d.where, e.what()));
    }
  }
}

std::vector<Instance> build_instances(const TaskConfig& cfg, const std::vector<Doc>& docs,
                                      const std::vector<Doc>& fewshot, int64_t num_fewshot) {
  std::vector<Instance> out;
  if (docs.empty()) return out;
  const int64_t shots = num_fewshot >= 0 ? num_fewshot : cfg.num_fewshot;
  const std::set<std::string> features = features_of(docs);
  const bool mc = cfg.output_type == OutputType::kMultipleChoice;
  // lm-eval decides "multiple input" (WinoGrande) once, from the first document: doc_to_text
  // returns an int index when each choice is a context.
  const bool multiple_input =
      cfg.doc_to_choice.set() && apply_doc_fn(cfg.doc_to_text, DocRole::kText, docs[0], features, cfg).is_number_integer();
  // Few-shot pools and samplers per subtask (each MMLU subject is a task of its own in lm-eval).
  std::map<std::string, std::vector<Doc>> pools;
  for (const auto& d : fewshot) pools[d.subtask].push_back(d);
  std::map<std::string, Sampler> samplers;
  out.reserve(docs.size());
  for (const auto& doc : docs) {
    Instance in;
    in.where = doc.where;
    in.subtask = doc.subtask;
    in.doc = doc.fields;
    // fewshot_context: description, then each example's question + target delimiter + answer +
    // fewshot delimiter, then the document's question.
    std::string prefix;
    if (cfg.description.set()) {
      const Json desc = apply_doc_fn(cfg.description, DocRole::kDescription, doc, features, cfg);
      prefix = need_str(desc, "description", doc);
    }
    if (shots > 0) {
      auto it = samplers.find(doc.subtask);
      if (it == samplers.end()) it = samplers.emplace(doc.subtask, Sampler(cfg, pools[doc.subtask])).first;
      for (const Doc* fs : it->second.sample(shots, doc)) {
        Json q = apply_doc_fn(cfg.fewshot_doc_to_text, DocRole::kText, *fs, features, cfg);
        Json c = cfg.fewshot_doc_to_choice.set() ? apply_doc_fn(cfg.fewshot_doc_to_choice, DocRole::kChoice, *fs, features, cfg)
                                                 : Json(nullptr);
        const Json a = apply_doc_fn(cfg.fewshot_doc_to_target, DocRole::kTarget, *fs, features, cfg);
        if (multiple_input) {
          q = py::subscript(c, q);
          c = nullptr;
        }
        prefix += qa_turn(need_str(q, "few-shot doc_to_text", *fs), c, a, cfg.fewshot_target_delimiter,
                          cfg.fewshot_fewshot_delimiter, *fs);
      }
    }
    const Json target = apply_doc_fn(cfg.doc_to_target, DocRole::kTarget, doc, features, cfg);
    if (cfg.output_type == OutputType::kLoglikelihoodRolling) {
      in.continuations.push_back(need_str(target, "doc_to_target", doc));
      out.push_back(std::move(in));
      continue;
    }
    const Json text = apply_doc_fn(cfg.doc_to_text, DocRole::kText, doc, features, cfg);
    if (!mc) {  // loglikelihood: (context, doc_to_target), no delimiter added
      in.contexts.push_back(prefix + need_str(text, "doc_to_text", doc));
      in.continuations.push_back(need_str(target, "doc_to_target", doc));
      out.push_back(std::move(in));
      continue;
    }
    const Json choices = apply_doc_fn(cfg.doc_to_choice, DocRole::kChoice, doc, features, cfg);
    JNAS_CHECK_CONFIG(choices.is_array(), "{}: doc_to_choice gave {} for {}, expected a list", cfg.doc_to_choice.where,
                      py::type_name(choices), doc.where);
    for (const auto& ch : choices) in.choices.push_back(need_str(ch, "a choice", doc));
    JNAS_CHECK_CONFIG(!in.choices.empty(), "{}: no choices for {}", cfg.doc_to_choice.where, doc.where);
    Json gold;
    if (multiple_input) {
      // One context per choice, the target shared: doc_to_text is the gold index.
      JNAS_CHECK_CONFIG(text.is_number_integer(), "{}: doc_to_text gave {} for {}, expected the gold index "
                        "(multiple input)", cfg.doc_to_text.where, py::type_name(text), doc.where);
      for (const auto& ch : in.choices) {
        in.contexts.push_back(prefix + ch);
        in.continuations.push_back(cfg.target_delimiter + py::str(target));
      }
      gold = text;
    } else {
      const std::string ctx = prefix + need_str(text, "doc_to_text", doc);
      for (const auto& ch : in.choices) {
        in.contexts.push_back(ctx);
        in.continuations.push_back(cfg.target_delimiter + ch);
      }
      gold = target;
    }
    // process_results: an index below the number of choices, a choice's text, or a list of
    // indices; anything else is lm-eval's -100 (never correct).
    const int64_t n = static_cast<int64_t>(in.choices.size());
    auto index_of = [&](const Json& g) -> int64_t {
      if (g.is_number_integer() || g.is_boolean()) {
        const int64_t i = g.is_boolean() ? g.get<bool>() : g.get<int64_t>();
        return i < n ? i : kGoldOutOfRange;
      }
      if (g.is_string()) {
        for (int64_t i = 0; i < n; ++i) {
          if (in.choices[static_cast<size_t>(i)] == g.get<std::string>()) return i;
        }
        return kGoldOutOfRange;
      }
      throw ConfigError(fmt::format("{}: the gold for {} is {} ({}), expected an index or a choice",
                                    cfg.doc_to_target.where, doc.where, py::type_name(g), py::repr(g).substr(0, 100)));
    };
    if (gold.is_array() && !multiple_input) {
      for (const auto& g : gold) in.golds.push_back(index_of(g));
    } else {
      in.golds.push_back(index_of(gold));
    }
    out.push_back(std::move(in));
  }
  return out;
}

namespace {

const SplitSource& split_source(const TaskConfig& cfg, const std::string& split, const char* why) {
  auto it = cfg.splits.find(split);
  if (it == cfg.splits.end()) {
    throw ConfigError(fmt::format("{}: no local data for split '{}' ({}); dataset_path '{}'{} is a Hugging Face "
                                  "name and nothing is downloaded",
                                  cfg.source, split, why, cfg.dataset_path,
                                  cfg.dataset_name.empty() ? "" : " / " + cfg.dataset_name),
                      fmt::format("give 'dataset_path: json' and 'dataset_kwargs: {{data_files: {{{}: <file under "
                                  "--data-dir>}}}}', or local_data.{} (docs/eval.md)", split, split));
  }
  return it->second;
}

}  // namespace

std::vector<Instance> load_instances(const TaskConfig& cfg, const std::string& data_dir, int64_t limit,
                                     int64_t num_fewshot) {
  const std::string& split = cfg.eval_split();
  std::vector<Doc> docs = read_split(split_source(cfg, split, "the split lm-eval evaluates"), data_dir, limit);
  JNAS_CHECK_IO(!docs.empty(), "{}: split '{}' has no documents", cfg.source, split);
  process_docs(cfg, docs);
  const int64_t shots = num_fewshot >= 0 ? num_fewshot : cfg.num_fewshot;
  std::vector<Doc> fewshot;
  if (shots > 0) {
    fewshot = read_split(split_source(cfg, cfg.fewshot_pool_split(), "the few-shot split"), data_dir, 0);
    process_docs(cfg, fewshot);
  }
  return build_instances(cfg, docs, fewshot, shots);
}

}  // namespace jointnas::eval
