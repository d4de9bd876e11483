// Task files, prompt templates, lm-eval request construction and multiple-choice metrics.
// lm-eval references (v0.4.x): api/task.py fewshot_context / construct_requests /
// process_results, api/metrics.py mean_stderr / pooled_sample_stderr.
#include "jointnas/eval/tasks.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <limits>
#include <set>

#include "jointnas/core/error.h"
#include "jointnas/eval/task_readers.h"

namespace jointnas::eval {
namespace {

std::string at_line(const std::string& file, const YAML::Node& n) {
  return n.Mark().is_null() ? file : fmt::format("{}:{}", file, n.Mark().line + 1);
}

std::string get_str(const YAML::Node& root, const char* key, const std::string& file,
                    const std::string& fallback = "") {
  const YAML::Node n = root[key];
  if (!n) return fallback;
  JNAS_CHECK_CONFIG(n.IsScalar(), "{}: '{}' must be a string", at_line(file, n), key);
  return n.as<std::string>();
}

std::vector<std::string> get_list(const YAML::Node& root, const char* key, const std::string& file) {
  std::vector<std::string> out;
  const YAML::Node n = root[key];
  if (!n) return out;
  JNAS_CHECK_CONFIG(n.IsSequence(), "{}: '{}' must be a list of strings", at_line(file, n), key);
  for (const auto& e : n) {
    JNAS_CHECK_CONFIG(e.IsScalar(), "{}: '{}' entries must be strings", at_line(file, e), key);
    out.push_back(e.as<std::string>());
  }
  return out;
}

// Python's str.isspace() code points (lm-eval strips with str.strip(), which removes them all,
// for example U+0085 NEXT LINE, which ends one MMLU sociology question).
bool is_python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The code point of the UTF-8 sequence s[i, i + n), or 0xFFFFFFFF when it is not one.
uint32_t decode_utf8(const std::string& s, size_t i, size_t n) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (n == 1) return b(0) < 0x80 ? b(0) : 0xFFFFFFFF;
  const unsigned char lead_mask = n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07;
  const unsigned char lead_tag = n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0;
  if ((b(0) & ~lead_mask) != lead_tag) return 0xFFFFFFFF;
  uint32_t c = b(0) & lead_mask;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0xFFFFFFFF;
    c = (c << 6) | (b(k) & 0x3F);
  }
  return c;
}

// Length of a whitespace code point starting at s[i] (0 if none there).
size_t space_at(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  return is_python_space(decode_utf8(s, i, n)) ? n : 0;
}

// Length of a whitespace code point ending at s[e - 1] (0 if none there).
size_t space_before(const std::string& s, size_t b, size_t e) {
  for (size_t n = 1; n <= 4 && n <= e - b; ++n) {
    const unsigned char c = static_cast<unsigned char>(s[e - n]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: the sequence starts further back
    return space_at(s, e - n) == n ? n : 0;
  }
  return 0;
}

std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  for (size_t n; b < e && (n = space_at(s, b)) > 0 && b + n <= e;) b += n;
  for (size_t n; e > b && (n = space_before(s, b, e)) > 0;) e -= n;
  return s.substr(b, e - b);
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  // Python str.replace: non-overlapping occurrences, left to right, one pass.
  std::string out;
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

// lm-eval tasks/hellaswag/utils.py preprocess: strip, " [title]" -> ". ", drop every "[...]"
// (non-greedy, within a line), "  " -> " " once (a run of three spaces keeps two, as in Python).
std::string hellaswag_preprocess(const std::string& text) {
  std::string t = replace_all(strip(text), " [title]", ". ");
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '[') {
      size_t j = i + 1;
      while (j < t.size() && t[j] != ']' && t[j] != '\n') ++j;
      if (j < t.size() && t[j] == ']') {
        i = j;
        continue;
      }
    }
    out += t[i];
  }
  return replace_all(out, "  ", " ");
}

const std::set<std::string> kKeys = {
    "task", "reader", "path", "file_suffix", "labels_path", "derive", "description", "text",
    "choices", "choices_field", "contexts_field", "continuation", "text_filter", "choice_filter",
    "gold_field", "target_delimiter", "fewshot_delimiter", "num_fewshot", "fewshot_path",
    "fewshot_file_suffix", "metrics"};
const std::set<std::string> kFilters = {"strip", "capitalize", "underscores_to_spaces", "hellaswag"};
const std::set<std::string> kMetrics = {"acc", "acc_norm", "acc_bytes"};

const std::string& field_string(const Doc& doc, const std::string& name, const std::string& source) {
  auto it = doc.fields.find(name);
  JNAS_CHECK_IO(it != doc.fields.end(), "{}: no field '{}' (task {})", doc.where, name, source);
  JNAS_CHECK_IO(std::holds_alternative<std::string>(it->second),
                "{}: field '{}' is a list, expected a string (task {})", doc.where, name, source);
  return std::get<std::string>(it->second);
}

const std::vector<std::string>& field_list(const Doc& doc, const std::string& name,
                                           const std::string& source) {
  auto it = doc.fields.find(name);
  JNAS_CHECK_IO(it != doc.fields.end(), "{}: no field '{}' (task {})", doc.where, name, source);
  JNAS_CHECK_IO(std::holds_alternative<std::vector<std::string>>(it->second),
                "{}: field '{}' is a string, expected a list (task {})", doc.where, name, source);
  return std::get<std::vector<std::string>>(it->second);
}

int64_t gold_of(const TaskConfig& cfg, const Doc& doc, size_t n_choices) {
  const std::string& g = strip(field_string(doc, cfg.gold_field, cfg.source));
  int64_t v = -1;
  bool ok = !g.empty() && g.size() < 10;
  for (char c : g) ok = ok && c >= '0' && c <= '9';
  if (ok) v = std::stoll(g);
  JNAS_CHECK_IO(ok && v < static_cast<int64_t>(n_choices),
                "{}: gold '{}' (field {}) is not an index below {} choices", doc.where, g,
                cfg.gold_field, n_choices);
  return v;
}

std::vector<std::string> render_choices(const TaskConfig& cfg, const Doc& doc) {
  std::vector<std::string> out;
  if (!cfg.choices_field.empty()) {
    out = field_list(doc, cfg.choices_field, cfg.source);
  } else {
    for (const auto& t : cfg.choices) out.push_back(render_template(t, doc, cfg.source));
  }
  if (!cfg.choice_filter.empty()) {
    for (auto& c : out) c = apply_filter(cfg.choice_filter, c);
  }
  return out;
}

std::string render_text(const TaskConfig& cfg, const Doc& doc) {
  std::string t = render_template(cfg.text, doc, cfg.source);
  return cfg.text_filter.empty() ? t : apply_filter(cfg.text_filter, t);
}

}  // namespace

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count lead bytes, not continuations
  return n;
}

std::string apply_filter(const std::string& name, const std::string& s) {
  if (name == "strip") return strip(s);
  if (name == "underscores_to_spaces") return replace_all(s, "_", " ");
  if (name == "hellaswag") return hellaswag_preprocess(s);
  if (name == "capitalize") {
    // Python str.capitalize on ASCII: first character upper, the rest lower. Non-ASCII bytes are
    // left as they are (Python would case-map them too; none of the shipped data needs it).
    std::string out = s;
    for (size_t i = 0; i < out.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(out[i]);
      if (c < 0x80) out[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
    }
    return out;
  }
  throw ConfigError(fmt::format("unknown filter '{}': expected strip, capitalize, "
                                "underscores_to_spaces or hellaswag",
                                name));
}

std::string render_template(const std::string& tmpl, const Doc& doc, const std::string& source) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out += c;  // "{{" or "}}": a literal brace
      ++i;
      continue;
    }
    JNAS_CHECK_CONFIG(c != '}', "{}: unmatched '}}' in template \"{}\"", source, tmpl);
    if (c != '{') {
      out += c;
      continue;
    }
    const size_t close = tmpl.find('}', i);
    JNAS_CHECK_CONFIG(close != std::string::npos, "{}: unclosed '{{' in template \"{}\"", source,
                      tmpl);
    std::string expr = tmpl.substr(i + 1, close - i - 1);
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t bar = expr.find('|', start);
      parts.push_back(strip(expr.substr(start, bar == std::string::npos ? bar : bar - start)));
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    JNAS_CHECK_CONFIG(!parts[0].empty(), "{}: empty field name in template \"{}\"", source, tmpl);
    std::string v = field_string(doc, parts[0], source);
    for (size_t k = 1; k < parts.size(); ++k) v = apply_filter(parts[k], v);
    out += v;
    i = close;
  }
  return out;
}

TaskConfig load_task_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw IoError(fmt::format("cannot read task file '{}'", path),
                  "task names resolve to <task-dir>/<name>.yaml; see configs/tasks/");
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: malformed YAML: {}", path, e.mark.line + 1, e.msg));
  }
  JNAS_CHECK_CONFIG(root.IsMap(), "{}: a task file is a mapping of keys", path);
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    JNAS_CHECK_CONFIG(kKeys.count(key), "{}: unknown key '{}' (keys: docs/eval.md)",
                      at_line(path, kv.first), key);
  }
  TaskConfig c;
  c.source = path;
  c.task = get_str(root, "task", path);
  c.reader = get_str(root, "reader", path);
  c.path = get_str(root, "path", path);
  c.file_suffix = get_str(root, "file_suffix", path);
  c.labels_path = get_str(root, "labels_path", path);
  c.description = get_str(root, "description", path);
  c.text = get_str(root, "text", path);
  c.choices = get_list(root, "choices", path);
  c.choices_field = get_str(root, "choices_field", path);
  c.contexts_field = get_str(root, "contexts_field", path);
  c.continuation = get_str(root, "continuation", path);
  c.text_filter = get_str(root, "text_filter", path);
  c.choice_filter = get_str(root, "choice_filter", path);
  c.gold_field = get_str(root, "gold_field", path);
  c.target_delimiter = get_str(root, "target_delimiter", path, " ");
  c.fewshot_delimiter = get_str(root, "fewshot_delimiter", path, "\n\n");
  c.fewshot_path = get_str(root, "fewshot_path", path);
  c.fewshot_file_suffix = get_str(root, "fewshot_file_suffix", path);
  if (root["num_fewshot"]) {
    const YAML::Node n = root["num_fewshot"];
    try {
      c.num_fewshot = n.as<int64_t>();
    } catch (const YAML::Exception&) {
      throw ConfigError(fmt::format("{}: num_fewshot must be an integer", at_line(path, n)));
    }
    JNAS_CHECK_CONFIG(c.num_fewshot >= 0 && c.num_fewshot <= 100,
                      "{}: num_fewshot must be in [0, 100], got {}", at_line(path, n), c.num_fewshot);
  }
  if (root["metrics"]) c.metrics = get_list(root, "metrics", path);
  if (const YAML::Node d = root["derive"]) {
    JNAS_CHECK_CONFIG(d.IsSequence(), "{}: 'derive' must be a list of {{field, regex}}",
                      at_line(path, d));
    for (const auto& e : d) {
      JNAS_CHECK_CONFIG(e.IsMap(), "{}: a 'derive' entry is {{field, regex}}", at_line(path, e));
      c.derive.push_back({get_str(e, "field", path), get_str(e, "regex", path)});
      JNAS_CHECK_CONFIG(!c.derive.back().field.empty() && !c.derive.back().regex.empty(),
                        "{}: a 'derive' entry needs field and regex", at_line(path, e));
    }
  }
  // Required keys and consistency.
  JNAS_CHECK_CONFIG(!c.task.empty(), "{}: missing 'task'", path);
  JNAS_CHECK_CONFIG(!c.reader.empty(), "{}: missing 'reader'", path);
  JNAS_CHECK_CONFIG(is_known_reader(c.reader), "{}: unknown reader '{}': expected {}", path,
                    c.reader, known_readers());
  JNAS_CHECK_CONFIG(!c.path.empty(), "{}: missing 'path'", path);
  JNAS_CHECK_CONFIG(!c.gold_field.empty(), "{}: missing 'gold_field'", path);
  const bool multiple_input = !c.contexts_field.empty();
  JNAS_CHECK_CONFIG(multiple_input != !c.text.empty(),
                    "{}: give either 'text' (one context) or 'contexts_field' + 'continuation' "
                    "(one context per choice)",
                    path);
  if (multiple_input) {
    JNAS_CHECK_CONFIG(!c.continuation.empty() && c.choices.empty() && c.choices_field.empty(),
                      "{}: with 'contexts_field' give 'continuation' and no choices", path);
    JNAS_CHECK_CONFIG(c.num_fewshot == 0, "{}: few-shot is not supported with 'contexts_field'",
                      path);
  } else {
    JNAS_CHECK_CONFIG(c.choices.empty() != c.choices_field.empty(),
                      "{}: give either 'choices' (templates) or 'choices_field'", path);
    JNAS_CHECK_CONFIG(c.continuation.empty(), "{}: 'continuation' needs 'contexts_field'", path);
  }
  JNAS_CHECK_CONFIG(c.num_fewshot == 0 || !c.fewshot_path.empty(),
                    "{}: num_fewshot {} needs 'fewshot_path'", path, c.num_fewshot);
  for (const auto& f : {c.text_filter, c.choice_filter}) {
    JNAS_CHECK_CONFIG(f.empty() || kFilters.count(f), "{}: unknown filter '{}'", path, f);
  }
  for (const auto& m : c.metrics) {
    JNAS_CHECK_CONFIG(kMetrics.count(m), "{}: unknown metric '{}': expected acc, acc_norm or "
                      "acc_bytes", path, m);
  }
  for (const auto& d : c.derive) check_derive_regex(d.regex, path);
  return c;
}

std::vector<Doc> read_docs(const TaskConfig& cfg, const std::string& data_dir, int64_t limit) {
  ReaderOptions o{cfg.reader, cfg.path, cfg.file_suffix, cfg.labels_path, limit};
  std::vector<Doc> docs = read_task_data(o, data_dir);
  for (auto& d : docs) {
    for (const auto& dv : cfg.derive) apply_derive(d, dv.field, dv.regex);
  }
  return docs;
}

std::vector<Doc> read_fewshot_docs(const TaskConfig& cfg, const std::string& data_dir) {
  if (cfg.num_fewshot == 0) return {};
  ReaderOptions o{cfg.reader, cfg.fewshot_path, cfg.fewshot_file_suffix, "", 0};
  std::vector<Doc> docs = read_task_data(o, data_dir);
  for (auto& d : docs) {
    for (const auto& dv : cfg.derive) apply_derive(d, dv.field, dv.regex);
  }
  return docs;
}

McItem make_item(const TaskConfig& cfg, const Doc& doc, const std::vector<Doc>& fewshot) {
  McItem item;
  item.where = doc.where;
  if (auto it = doc.fields.find("subtask"); it != doc.fields.end()) {
    item.subtask = std::get<std::string>(it->second);
  }
  if (!cfg.contexts_field.empty()) {
    // lm-eval multiple input (WinoGrande): doc_to_choice gives the contexts, doc_to_target the
    // shared continuation, doc_to_text the gold index.
    item.contexts = field_list(doc, cfg.contexts_field, cfg.source);
    std::string cont = render_template(cfg.continuation, doc, cfg.source);
    item.choices = item.contexts;
    item.continuations.assign(item.contexts.size(), cfg.target_delimiter + cont);
  } else {
    // fewshot_context: description, then per example text + target_delimiter + its gold choice +
    // fewshot_delimiter, then this doc's text.
    std::string ctx = render_template(cfg.description, doc, cfg.source);
    int64_t shots = 0;
    for (const auto& fs : fewshot) {
      if (shots == cfg.num_fewshot) break;
      auto sub = fs.fields.find("subtask");
      const std::string fs_sub = sub == fs.fields.end() ? "" : std::get<std::string>(sub->second);
      if (fs_sub != item.subtask) continue;
      std::vector<std::string> fs_choices = render_choices(cfg, fs);
      ctx += render_text(cfg, fs) + cfg.target_delimiter +
             fs_choices[gold_of(cfg, fs, fs_choices.size())] + cfg.fewshot_delimiter;
      ++shots;
    }
    JNAS_CHECK_IO(shots == cfg.num_fewshot, "{}: {} few-shot examples for subtask '{}', {} needed",
                  cfg.fewshot_path, shots, item.subtask, cfg.num_fewshot);
    ctx += render_text(cfg, doc);
    item.choices = render_choices(cfg, doc);
    item.contexts.assign(item.choices.size(), ctx);
    for (const auto& ch : item.choices) item.continuations.push_back(cfg.target_delimiter + ch);
  }
  JNAS_CHECK_IO(item.choices.size() >= 2, "{}: {} choices, a multiple-choice item needs 2 or more",
                doc.where, item.choices.size());
  item.gold = gold_of(cfg, doc, item.choices.size());
  return item;
}

std::vector<McItem> make_items(const TaskConfig& cfg, const std::vector<Doc>& docs,
                               const std::vector<Doc>& fewshot) {
  std::vector<McItem> items;
  items.reserve(docs.size());
  for (const auto& d : docs) items.push_back(make_item(cfg, d, fewshot));
  return items;
}

ItemScore score_item(const McItem& item, const std::vector<double>& lls) {
  JNAS_CHECK_CONFIG(lls.size() == item.choices.size(), "{}: {} log-likelihoods for {} choices",
                    item.where, lls.size(), item.choices.size());
  ItemScore s;
  double best = -std::numeric_limits<double>::infinity(), best_norm = best, best_bytes = best;
  for (size_t i = 0; i < lls.size(); ++i) {
    // numpy divides by the float length; an empty choice gives +-inf (never in shipped tasks).
    const double n_chars = static_cast<double>(utf8_length(item.choices[i]));
    const double n_bytes = static_cast<double>(item.choices[i].size());
    const double norm = lls[i] / n_chars, by_bytes = lls[i] / n_bytes;
    if (lls[i] > best) best = lls[i], s.pred = static_cast<int64_t>(i);
    if (norm > best_norm) best_norm = norm, s.pred_norm = static_cast<int64_t>(i);
    if (by_bytes > best_bytes) best_bytes = by_bytes, s.pred_bytes = static_cast<int64_t>(i);
  }
  s.acc = s.pred == item.gold;
  s.acc_norm = s.pred_norm == item.gold;
  s.acc_bytes = s.pred_bytes == item.gold;
  return s;
}

MetricValue mean_stderr(const std::vector<double>& xs) {
  MetricValue m;
  const double n = static_cast<double>(xs.size());
  if (xs.empty()) return m;
  for (double x : xs) m.mean += x;
  m.mean /= n;
  if (xs.size() < 2) {
    m.stderr_ = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  double ss = 0;
  for (double x : xs) ss += (x - m.mean) * (x - m.mean);
  m.stderr_ = std::sqrt(ss / (n - 1)) / std::sqrt(n);
  return m;
}

MetricValue pooled(const std::vector<MetricValue>& parts, const std::vector<int64_t>& sizes) {
  MetricValue m;
  double total = 0, var = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const double n = static_cast<double>(sizes[i]);
    total += n;
    m.mean += n * parts[i].mean;
    if (sizes[i] > 1) var += (n - 1) * parts[i].stderr_ * parts[i].stderr_ * n;
  }
  if (total == 0) return m;
  m.mean /= total;
  const double dof = total - static_cast<double>(parts.size());
  m.stderr_ = dof > 0 ? std::sqrt(var / dof / total) : std::numeric_limits<double>::quiet_NaN();
  return m;
}

}  // namespace jointnas::eval
