// lm-eval task YAML -> TaskConfig (see task_config.h). Reference: lm-eval 0.4.13
// config/task.py (TaskConfig, FewshotConfig), tasks/__init__.py (include: merging), utils.py
// (load_yaml_config: an included file's keys first, the including file's override them).
#include "jointnas/eval/task_config.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>

#include "jointnas/core/error.h"
#include "jointnas/eval/task_builtins.h"
#include "jointnas/eval/task_data.h"

namespace jointnas::eval {
namespace {
namespace fs = std::filesystem;

constexpr int kMaxIncludeDepth = 8;

// Keys lm-eval's TaskConfig has that jointnas reads, ignores (documentation only) or refuses.
const std::set<std::string> kRead = {
    "task", "include", "output_type", "dataset_path", "dataset_name", "dataset_kwargs",
    "training_split", "validation_split", "test_split", "fewshot_split", "process_docs",
    "doc_to_text", "doc_to_target", "doc_to_choice", "process_results", "description",
    "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot", "metric_list",
    "repeats", "unsafe_code", "local_data"};
const std::set<std::string> kIgnored = {"task_alias", "tag", "group", "group_alias", "metadata",
                                        "should_decontaminate", "doc_to_decontamination_query"};
const std::map<std::string, std::string> kRefused = {
    {"generation_kwargs", "generate_until tasks are not supported"},
    {"filter_list", "filters of generated text are not supported (generate_until)"},
    {"use_prompt", "promptsource prompts are not supported: write doc_to_text"},
    {"doc_to_image", "multimodal tasks are not supported"},
    {"doc_to_audio", "multimodal tasks are not supported"},
    {"custom_dataset", "custom_dataset is Python: give the data as local files"},
    {"gen_prefix", "gen_prefix is not supported"},
    {"aggregate_metric_list", "group files are not supported: run the group's tasks"},
};

struct Ctx {
  std::string file;  // the top-level task file
  std::string at(const std::string& key, const YAML::Node& n) const {
    return n.Mark().is_null() ? fmt::format("{}: {}", file, key)
                              : fmt::format("{}:{}: {}", file, n.Mark().line + 1, key);
  }
};

// A plain (unquoted) scalar as PyYAML resolves it: null, bool (YAML 1.1 words), int, float, str.
Json scalar_json(const YAML::Node& n) {
  const std::string v = n.Scalar();
  if (n.Tag() != "?") return v;  // quoted or explicitly tagged: a string
  static const std::regex kInt("[-+]?(0|[1-9][0-9_]*)");
  static const std::regex kFloat("[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+][0-9]+)?");
  if (v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL") return nullptr;
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) {
    if (v == t) return true;
  }
  for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) {
    if (v == f) return false;
  }
  if (std::regex_match(v, kInt) && v.size() < 19) {
    std::string d = v;
    d.erase(std::remove(d.begin(), d.end(), '_'), d.end());
    return static_cast<int64_t>(std::stoll(d));
  }
  if (std::regex_match(v, kFloat) && v != "." && v.size() < 64) return std::stod(v);
  return v;
}

Json node_json(const YAML::Node& n, const Ctx& c, const std::string& key, int depth = 0) {
  JNAS_CHECK_CONFIG(depth < 32, "{}: nested too deeply", c.at(key, n));
  if (n.IsScalar()) {
    if (auto bad = find_invalid_utf8(n.Scalar())) {
      throw ConfigError(fmt::format("{}: not UTF-8 (byte {})", c.at(key, n), *bad));
    }
    return scalar_json(n);
  }
  if (n.IsSequence()) {
    Json out = Json::array();
    for (const auto& e : n) out.push_back(node_json(e, c, key, depth + 1));
    return out;
  }
  if (n.IsMap()) {
    Json out = Json::object();
    for (const auto& kv : n) out[kv.first.Scalar()] = node_json(kv.second, c, key, depth + 1);
    return out;
  }
  return nullptr;
}

std::string get_str(const YAML::Node& n, const Ctx& c, const std::string& key) {
  JNAS_CHECK_CONFIG(n.IsScalar() || n.IsNull(), "{}: expected a string, got a {}", c.at(key, n),
                    n.IsSequence() ? "list" : "mapping");
  if (n.IsNull()) return "";
  if (auto bad = find_invalid_utf8(n.Scalar())) {
    throw ConfigError(fmt::format("{}: not UTF-8 (byte {})", c.at(key, n), *bad));
  }
  return n.Scalar();
}

// Loads `path` and its includes into one key -> node map (include first, own keys override).
void load_merged(const std::string& path, const Ctx& c, int depth, std::map<std::string, YAML::Node>& out) {
  JNAS_CHECK_CONFIG(depth <= kMaxIncludeDepth, "{}: include: nested more than {} deep", path, kMaxIncludeDepth);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw IoError(fmt::format("cannot read task file '{}'", path),
                  "task names resolve to <task-dir>/<name>.yaml; see configs/tasks/");
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: malformed YAML: {}", path, e.mark.line + 1, e.msg));
  }
  JNAS_CHECK_CONFIG(root.IsMap(), "{}: a task file is a mapping of keys (lm-eval task YAML)", path);
  if (const YAML::Node inc = root["include"]) {
    const std::string name = get_str(inc, c, "include");
    const std::string dir = fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string();
    load_merged(resolve_inside(dir, name, c.at("include", inc), "include"), c, depth + 1, out);
  }
  for (const auto& kv : root) {
    JNAS_CHECK_CONFIG(kv.first.IsScalar(), "{}: keys must be strings", path);
    const std::string key = kv.first.Scalar();
    if (key == "include") continue;
    if (auto r = kRefused.find(key); r != kRefused.end()) {
      throw ConfigError(fmt::format("{}: key '{}': {}", c.at(key, kv.first), key, r->second));
    }
    JNAS_CHECK_CONFIG(kRead.count(key) || kIgnored.count(key),
                      "{}: unknown key '{}' (lm-eval task keys; docs/eval.md)", c.at(key, kv.first), key);
    out[key] = kv.second;
  }
}

DocFn doc_fn(const YAML::Node& n, const Ctx& c, const std::string& key, const std::string& task,
             HookRole role) {
  DocFn f;
  f.where = c.at(key, n);
  if (!n || n.IsNull()) return f;
  if (n.Tag() == "!function") {
    f.kind = DocFn::kBuiltin;
    f.builtin = get_str(n, c, key);
    check_builtin(task, role, f.builtin, f.where);
    return f;
  }
  JNAS_CHECK_CONFIG(role != HookRole::kProcessDocs, "{}: process_docs must be '!function module.name'", f.where);
  if (n.IsScalar()) {
    const Json v = scalar_json(n);
    if (v.is_number_integer()) {
      f.kind = DocFn::kValue;
      f.value = v;
      return f;
    }
    f.kind = DocFn::kTemplate;
    f.text = get_str(n, c, key);
    f.tmpl = std::make_shared<jinja::Template>(jinja::Template::parse(f.text, f.where));
    return f;
  }
  // A list (doc_to_choice: ["no", "yes"], doc_to_target for multiple targets) or a dict
  // (doc_to_choice: its values, as lm-eval's list(doc_to_choice.values())).
  Json v = node_json(n, c, key);
  if (v.is_object()) {
    Json vals = Json::array();
    for (const auto& [k, x] : v.items()) vals.push_back(x);
    v = vals;
  }
  f.kind = DocFn::kValue;
  f.value = v;
  return f;
}

MetricSpec metric_defaults(const std::string& m) {
  if (m == "perplexity") return {m, "perplexity", false};
  if (m == "word_perplexity" || m == "byte_perplexity") return {m, "weighted_perplexity", false};
  if (m == "bits_per_byte") return {m, "bits_per_byte", false};
  return {m, "mean", true};
}

std::vector<MetricSpec> read_metrics(const YAML::Node& n, const Ctx& c, OutputType type) {
  static const std::map<OutputType, std::set<std::string>> kAllowed = {
      {OutputType::kMultipleChoice, {"acc", "acc_norm", "acc_bytes"}},
      {OutputType::kLoglikelihood, {"acc", "perplexity"}},
      {OutputType::kLoglikelihoodRolling, {"word_perplexity", "byte_perplexity", "bits_per_byte"}}};
  static const std::set<std::string> kAggs = {"mean", "perplexity", "weighted_perplexity", "bits_per_byte"};
  JNAS_CHECK_CONFIG(n.IsSequence(), "{}: expected a list of {{metric, aggregation, higher_is_better}}",
                    c.at("metric_list", n));
  std::vector<MetricSpec> out;
  for (const auto& e : n) {
    JNAS_CHECK_CONFIG(e.IsMap() && e["metric"], "{}: each entry needs 'metric'", c.at("metric_list", e));
    const std::string name = get_str(e["metric"], c, "metric_list.metric");
    JNAS_CHECK_CONFIG(kAllowed.at(type).count(name), "{}: metric '{}' is not one of {} for output_type {}",
                      c.at("metric_list", e), name, fmt::join(kAllowed.at(type), ", "), output_type_name(type));
    MetricSpec m = metric_defaults(name);
    for (const auto& kv : e) {
      const std::string k = kv.first.Scalar();
      if (k == "metric") continue;
      if (k == "aggregation") {
        m.aggregation = get_str(kv.second, c, "metric_list.aggregation");
        JNAS_CHECK_CONFIG(kAggs.count(m.aggregation), "{}: aggregation '{}' is not one of {}",
                          c.at("metric_list.aggregation", kv.second), m.aggregation, fmt::join(kAggs, ", "));
      } else if (k == "higher_is_better") {
        const Json b = node_json(kv.second, c, k);
        JNAS_CHECK_CONFIG(b.is_boolean(), "{}: expected true or false", c.at("metric_list.higher_is_better", kv.second));
        m.higher_is_better = b.get<bool>();
      } else {
        throw ConfigError(fmt::format("{}: unknown metric option '{}' (metric, aggregation, higher_is_better)",
                                      c.at("metric_list", kv.first), k));
      }
    }
    out.push_back(m);
  }
  return out;
}

// dataset_kwargs.data_files (a path, a list, or split -> path / list) for dataset_path json/csv.
void read_data_files(const YAML::Node& kw, const std::string& dataset_path, const Ctx& c, TaskConfig& t) {
  if (!kw || kw.IsNull()) return;
  JNAS_CHECK_CONFIG(kw.IsMap(), "{}: expected a mapping", c.at("dataset_kwargs", kw));
  const YAML::Node files = kw["data_files"];
  if (!files) return;
  JNAS_CHECK_CONFIG(dataset_path == "json" || dataset_path == "csv" || dataset_path == "parquet",
                    "{}: data_files needs dataset_path json or csv (got '{}')", c.at("dataset_path", kw), dataset_path);
  JNAS_CHECK_CONFIG(dataset_path != "parquet", "{}: parquet data is not supported (no Arrow library); "
                    "convert it to jsonl", c.at("dataset_path", kw));
  auto paths = [&](const YAML::Node& n, const std::string& key) {
    std::vector<std::string> p;
    if (n.IsSequence()) {
      for (const auto& e : n) p.push_back(get_str(e, c, key));
    } else {
      p.push_back(get_str(n, c, key));
    }
    JNAS_CHECK_CONFIG(!p.empty() && !p[0].empty(), "{}: empty path", c.at(key, n));
    return p;
  };
  const std::string reader = dataset_path == "csv" ? "csv" : "json";
  if (files.IsMap()) {
    for (const auto& kv : files) {
      const std::string split = kv.first.Scalar();
      t.splits[split] = {reader, paths(kv.second, "dataset_kwargs.data_files." + split), "",
                         c.at("dataset_kwargs.data_files." + split, kv.second)};
    }
  } else {
    // datasets.load_dataset puts files given without a split into "train".
    t.splits["train"] = {reader, paths(files, "dataset_kwargs.data_files"), "", c.at("dataset_kwargs.data_files", files)};
  }
}

// jointnas's local_data: split -> {reader, path (or paths), labels}.
void read_local_data(const YAML::Node& n, const Ctx& c, TaskConfig& t) {
  JNAS_CHECK_CONFIG(n.IsMap(), "{}: expected split -> {{reader, path, labels}}", c.at("local_data", n));
  for (const auto& kv : n) {
    const std::string split = kv.first.Scalar();
    const std::string key = "local_data." + split;
    JNAS_CHECK_CONFIG(kv.second.IsMap(), "{}: expected {{reader, path, labels}}", c.at(key, kv.second));
    SplitSource s;
    s.where = c.at(key, kv.second);
    for (const auto& f : kv.second) {
      const std::string k = f.first.Scalar();
      if (k == "reader") {
        s.reader = get_str(f.second, c, key + ".reader");
      } else if (k == "path") {
        if (f.second.IsSequence()) {
          for (const auto& e : f.second) s.paths.push_back(get_str(e, c, key + ".path"));
        } else {
          s.paths.push_back(get_str(f.second, c, key + ".path"));
        }
      } else if (k == "labels") {
        s.labels = get_str(f.second, c, key + ".labels");
      } else {
        throw ConfigError(fmt::format("{}: unknown key '{}' (reader, path, labels)", c.at(key, f.first), k));
      }
    }
    JNAS_CHECK_CONFIG(is_known_reader(s.reader), "{}: reader '{}' is not one of {}", s.where, s.reader, known_readers());
    JNAS_CHECK_CONFIG(!s.paths.empty() && !s.paths[0].empty(), "{}: missing 'path'", s.where);
    t.splits[split] = s;
  }
}

}  // namespace

const char* output_type_name(OutputType t) {
  switch (t) {
    case OutputType::kMultipleChoice: return "multiple_choice";
    case OutputType::kLoglikelihood: return "loglikelihood";
    case OutputType::kLoglikelihoodRolling: return "loglikelihood_rolling";
  }
  return "?";
}

std::vector<MetricSpec> default_metrics(OutputType t) {
  switch (t) {
    case OutputType::kMultipleChoice: return {metric_defaults("acc"), metric_defaults("acc_norm")};
    case OutputType::kLoglikelihood: return {metric_defaults("perplexity"), metric_defaults("acc")};
    case OutputType::kLoglikelihoodRolling:
      return {metric_defaults("word_perplexity"), metric_defaults("byte_perplexity"), metric_defaults("bits_per_byte")};
  }
  return {};
}

const std::string& TaskConfig::eval_split() const { return !test_split.empty() ? test_split : validation_split; }

const std::string& TaskConfig::fewshot_pool_split() const {
  if (!fewshot_split.empty()) return fewshot_split;
  if (!training_split.empty()) return training_split;
  if (!validation_split.empty()) return validation_split;
  return test_split;
}

TaskConfig load_task_config(const std::string& path) {
  Ctx c{path};
  std::map<std::string, YAML::Node> m;
  load_merged(path, c, 0, m);
  auto has = [&](const char* k) { return m.count(k) && m[k] && !m[k].IsNull(); };
  auto str = [&](const char* k, const std::string& dflt = "") { return has(k) ? get_str(m[k], c, k) : dflt; };
  TaskConfig t;
  t.source = path;
  JNAS_CHECK_CONFIG(has("task"), "{}: missing 'task' (the task's name)", path);
  JNAS_CHECK_CONFIG(m["task"].IsScalar(), "{}: 'task' is a list: group files are not supported, run the "
                    "group's tasks one by one", c.at("task", m["task"]));
  t.task = str("task");
  const std::string ot = str("output_type", "generate_until");
  if (ot == "multiple_choice") {
    t.output_type = OutputType::kMultipleChoice;
  } else if (ot == "loglikelihood") {
    t.output_type = OutputType::kLoglikelihood;
  } else if (ot == "loglikelihood_rolling") {
    t.output_type = OutputType::kLoglikelihoodRolling;
  } else {
    throw ConfigError(fmt::format("{}: output_type '{}' is not supported (multiple_choice, loglikelihood, "
                                  "loglikelihood_rolling){}", has("output_type") ? c.at("output_type", m["output_type"]) : path,
                                  ot, has("output_type") ? "" : "; lm-eval's default is generate_until"));
  }
  t.dataset_path = str("dataset_path");
  t.dataset_name = str("dataset_name");
  t.training_split = str("training_split");
  t.validation_split = str("validation_split");
  t.test_split = str("test_split");
  t.fewshot_split = str("fewshot_split");
  if (has("dataset_kwargs")) read_data_files(m["dataset_kwargs"], t.dataset_path, c, t);
  if (has("local_data")) read_local_data(m["local_data"], c, t);
  JNAS_CHECK_CONFIG(!t.eval_split().empty(), "{}: neither test_split nor validation_split is set", path);
  auto fn = [&](const char* k, HookRole role) {
    return has(k) ? doc_fn(m[k], c, k, t.task, role) : DocFn{};
  };
  t.process_docs = fn("process_docs", HookRole::kProcessDocs);
  t.doc_to_text = fn("doc_to_text", HookRole::kDocFn);
  t.doc_to_target = fn("doc_to_target", HookRole::kDocFn);
  t.doc_to_choice = fn("doc_to_choice", HookRole::kDocFn);
  if (has("description")) {
    t.description = doc_fn(m["description"], c, "description", t.task, HookRole::kDocFn);
    JNAS_CHECK_CONFIG(t.description.kind == DocFn::kTemplate, "{}: description must be a string",
                      c.at("description", m["description"]));
  }
  if (has("target_delimiter")) t.target_delimiter = get_str(m["target_delimiter"], c, "target_delimiter");
  if (has("fewshot_delimiter")) t.fewshot_delimiter = get_str(m["fewshot_delimiter"], c, "fewshot_delimiter");
  if (has("num_fewshot")) {
    const Json n = node_json(m["num_fewshot"], c, "num_fewshot");
    JNAS_CHECK_CONFIG(n.is_number_integer() && n.get<int64_t>() >= 0 && n.get<int64_t>() <= 100,
                      "{}: expected an integer in [0, 100]", c.at("num_fewshot", m["num_fewshot"]));
    t.num_fewshot = n.get<int64_t>();
  }
  if (has("repeats")) {
    JNAS_CHECK_CONFIG(node_json(m["repeats"], c, "repeats") == Json(1), "{}: only repeats: 1 is supported",
                      c.at("repeats", m["repeats"]));
  }
  if (has("unsafe_code")) {
    JNAS_CHECK_CONFIG(node_json(m["unsafe_code"], c, "unsafe_code") == Json(false),
                      "{}: tasks that execute code are not supported", c.at("unsafe_code", m["unsafe_code"]));
  }
  // Few-shot settings inherit the task's unless fewshot_config overrides them.
  t.fewshot_doc_to_text = t.doc_to_text;
  t.fewshot_doc_to_target = t.doc_to_target;
  t.fewshot_doc_to_choice = t.doc_to_choice;
  t.fewshot_target_delimiter = t.target_delimiter;
  t.fewshot_fewshot_delimiter = t.fewshot_delimiter;
  if (has("fewshot_config")) {
    const YAML::Node f = m["fewshot_config"];
    JNAS_CHECK_CONFIG(f.IsMap(), "{}: expected a mapping", c.at("fewshot_config", f));
    for (const auto& kv : f) {
      const std::string k = kv.first.Scalar(), key = "fewshot_config." + k;
      if (k == "sampler") {
        t.fewshot_sampler = get_str(kv.second, c, key);
        JNAS_CHECK_CONFIG(t.fewshot_sampler == "default" || t.fewshot_sampler == "first_n",
                          "{}: sampler '{}' is not supported (default, first_n)", c.at(key, kv.second), t.fewshot_sampler);
      } else if (k == "split") {
        t.fewshot_split = get_str(kv.second, c, key);
      } else if (k == "doc_to_text") {
        t.fewshot_doc_to_text = doc_fn(kv.second, c, key, t.task, HookRole::kDocFn);
      } else if (k == "doc_to_target") {
        t.fewshot_doc_to_target = doc_fn(kv.second, c, key, t.task, HookRole::kDocFn);
      } else if (k == "doc_to_choice") {
        t.fewshot_doc_to_choice = doc_fn(kv.second, c, key, t.task, HookRole::kDocFn);
      } else if (k == "target_delimiter") {
        t.fewshot_target_delimiter = get_str(kv.second, c, key);
      } else if (k == "fewshot_delimiter") {
        t.fewshot_fewshot_delimiter = get_str(kv.second, c, key);
      } else {
        throw ConfigError(fmt::format("{}: '{}' is not supported (sampler, split, doc_to_text, doc_to_target, "
                                      "doc_to_choice, target_delimiter, fewshot_delimiter)", c.at(key, kv.first), k));
      }
    }
  }
  t.metrics = has("metric_list") ? read_metrics(m["metric_list"], c, t.output_type) : default_metrics(t.output_type);
  if (has("process_results")) {
    const YAML::Node p = m["process_results"];
    JNAS_CHECK_CONFIG(p.Tag() == "!function", "{}: process_results must be '!function module.name'",
                      c.at("process_results", p));
    t.process_results = get_str(p, c, "process_results");
    check_builtin(t.task, HookRole::kProcessResults, t.process_results, c.at("process_results", p));
  }
  // What each output type needs (lm-eval fails later, on the first document).
  const bool mc = t.output_type == OutputType::kMultipleChoice;
  JNAS_CHECK_CONFIG(!mc || t.doc_to_choice.set(), "{}: multiple_choice needs 'doc_to_choice'", path);
  JNAS_CHECK_CONFIG(!mc || (t.doc_to_text.set() && t.doc_to_target.set()),
                    "{}: multiple_choice needs 'doc_to_text' and 'doc_to_target'", path);
  JNAS_CHECK_CONFIG(t.doc_to_target.set(), "{}: {} needs 'doc_to_target'", path, output_type_name(t.output_type));
  JNAS_CHECK_CONFIG(t.output_type != OutputType::kLoglikelihood || t.doc_to_text.set(),
                    "{}: loglikelihood needs 'doc_to_text'", path);
  return t;
}

}  // namespace jointnas::eval
