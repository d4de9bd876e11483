// Local task data readers (one function per format, a table maps names to them) and regex field
// derivation. Task data is untrusted input: sizes are bounded, every error names file and line.
#include "jointnas/eval/task_readers.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"

namespace jointnas::eval {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kMaxFileBytes = int64_t{1} << 30;  // 1 GiB: far above any task split

std::string read_file(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  JNAS_CHECK_IO(!ec, "cannot read task data '{}': {}", path, ec.message());
  JNAS_CHECK_IO(static_cast<int64_t>(size) <= kMaxFileBytes, "{}: {} bytes, over the 1 GiB limit",
                path, size);
  std::ifstream in(path, std::ios::binary);
  JNAS_CHECK_IO(in.good(), "cannot open task data '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t e = text.find('\n', start);
    if (e == std::string::npos) e = text.size();
    std::string line = text.substr(start, e - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = e + 1;
  }
  return lines;
}

// JSON values -> fields: strings as they are, integers as decimal text, booleans as "0" / "1",
// arrays of scalars as lists, objects flattened with dotted names ("choices.text").
void add_json_fields(Doc& doc, const Json& j, const std::string& prefix) {
  JNAS_CHECK_IO(j.is_object(), "{}: expected a JSON object", doc.where);
  auto scalar = [&](const Json& v, const std::string& key) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number()) return v.dump();
    throw IoError(fmt::format("{}: field '{}' holds a nested value of an unsupported kind",
                              doc.where, key));
  };
  for (const auto& [k, v] : j.items()) {
    const std::string key = prefix + k;
    if (v.is_object()) {
      add_json_fields(doc, v, key + ".");
    } else if (v.is_array()) {
      std::vector<std::string> list;
      for (const auto& e : v) list.push_back(scalar(e, key));
      doc.fields[key] = std::move(list);
    } else if (!v.is_null()) {
      doc.fields[key] = scalar(v, key);
    }
  }
}

std::vector<Doc> read_jsonl(const std::string& path) {
  std::vector<Doc> docs;
  const auto lines = split_lines(read_file(path));
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    Doc d;
    d.where = fmt::format("{}:{}", path, i + 1);
    add_json_fields(d, parse_json(lines[i], d.where), "");
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<Doc> read_json_array(const std::string& path) {
  Json j = parse_json(read_file(path), path);
  JNAS_CHECK_IO(j.is_array(), "{}: expected a JSON array of objects", path);
  std::vector<Doc> docs;
  for (size_t i = 0; i < j.size(); ++i) {
    Doc d;
    d.where = fmt::format("{}: item {}", path, i);
    add_json_fields(d, j[i], "");
    docs.push_back(std::move(d));
  }
  return docs;
}

// RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes. The first record is
// the header; every record must have as many fields.
std::vector<Doc> read_csv_file(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::vector<std::string>> records;
  std::vector<int64_t> record_line;
  std::vector<std::string> rec;
  std::string field;
  bool quoted = false, field_started = false;
  int64_t line = 1, rec_start = 1;
  auto end_field = [&] {
    rec.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_record = [&] {
    end_field();
    if (!(rec.size() == 1 && rec[0].empty())) {  // skip blank lines
      records.push_back(std::move(rec));
      record_line.push_back(rec_start);
    }
    rec.clear();
    rec_start = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      JNAS_CHECK_IO(!field_started, "{}:{}: quote inside an unquoted field", path, line);
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++line;
      end_record();
    } else {
      field += c;
      field_started = true;
    }
  }
  JNAS_CHECK_IO(!quoted, "{}:{}: unterminated quoted field (record from line {})", path, line,
                rec_start);
  if (field_started || !rec.empty()) end_record();
  JNAS_CHECK_IO(!records.empty(), "{}: empty CSV, expected a header row", path);
  const auto& header = records[0];
  std::vector<Doc> docs;
  for (size_t r = 1; r < records.size(); ++r) {
    JNAS_CHECK_IO(records[r].size() == header.size(), "{}:{}: {} fields, the header has {}", path,
                  record_line[r], records[r].size(), header.size());
    Doc d;
    d.where = fmt::format("{}:{}", path, record_line[r]);
    for (size_t k = 0; k < header.size(); ++k) d.fields[header[k]] = records[r][k];
    docs.push_back(std::move(d));
  }
  return docs;
}

// llama.cpp's --hellaswag text (6 lines per item: "<activity_label>: <ctx>", gold, 4 endings).
// lm-eval capitalizes ctx_b, which this format has merged into ctx, so it is recovered here:
// HellaSwag puts the trailing incomplete noun phrase of ActivityNet contexts ("he", "the lady")
// in ctx_b. ctx_b = the text after the last ". " / "? " / "! " when it starts with a lowercase
// ASCII letter and does not end a sentence; otherwise ctx_b is empty (WikiHow contexts). The
// heuristic is documented in docs/eval.md; the parity script applies the same split.
std::vector<Doc> read_hellaswag_txt(const std::string& path) {
  const auto lines = split_lines(read_file(path));
  size_t n = lines.size();
  while (n > 0 && lines[n - 1].empty()) --n;
  JNAS_CHECK_IO(n % 6 == 0, "{}: {} lines, expected 6 per item (context, gold, 4 endings)", path, n);
  std::vector<Doc> docs;
  for (size_t i = 0; i < n; i += 6) {
    Doc d;
    d.where = fmt::format("{}:{}", path, i + 1);
    const std::string& head = lines[i];
    const size_t colon = head.find(": ");
    JNAS_CHECK_IO(colon != std::string::npos, "{}: expected '<activity label>: <context>'", d.where);
    const std::string rest = head.substr(colon + 2);
    size_t cut = std::string::npos;
    for (const char* end : {". ", "? ", "! "}) {
      size_t k = rest.rfind(end);
      if (k != std::string::npos && (cut == std::string::npos || k > cut)) cut = k;
    }
    std::string ctx_a = rest, ctx_b;
    if (cut != std::string::npos) {
      const std::string tail = rest.substr(cut + 2);
      const char last = tail.empty() ? '\0' : tail.back();
      if (!tail.empty() && tail[0] >= 'a' && tail[0] <= 'z' && last != '.' && last != '?' &&
          last != '!') {
        ctx_a = rest.substr(0, cut + 1);
        ctx_b = tail;
      }
    }
    d.fields["activity_label"] = head.substr(0, colon);
    d.fields["ctx_a"] = ctx_a;
    d.fields["ctx_b"] = ctx_b;
    d.fields["label"] = lines[i + 1];
    d.fields["endings"] = std::vector<std::string>(lines.begin() + static_cast<long>(i) + 2,
                                                   lines.begin() + static_cast<long>(i) + 6);
    docs.push_back(std::move(d));
  }
  return docs;
}

// LLM-Adapters instruction-format multiple choice (ARC): "Please choose the correct answer to
// the question: <q>\n\nAnswer1: <a> Answer2: <b> ...\n\nAnswer format: answer1/answer2/...",
// answer "answerK". Fields: question, choices (list), label (K - 1).
std::vector<Doc> read_llm_adapters_mc(const std::string& path) {
  std::vector<Doc> raw = read_json_array(path);
  const std::string kPrefix = "Please choose the correct answer to the question: ";
  for (auto& d : raw) {
    auto get = [&](const char* k) -> std::string {
      auto it = d.fields.find(k);
      JNAS_CHECK_IO(it != d.fields.end() && std::holds_alternative<std::string>(it->second),
                    "{}: missing string field '{}'", d.where, k);
      return std::get<std::string>(it->second);
    };
    const std::string ins = get("instruction"), answer = get("answer");
    JNAS_CHECK_IO(ins.rfind(kPrefix, 0) == 0, "{}: instruction does not start with \"{}\"",
                  d.where, kPrefix);
    const size_t fmt_at = ins.rfind("\n\nAnswer format: ");
    const size_t a1 = ins.rfind("\n\nAnswer1: ", fmt_at);
    JNAS_CHECK_IO(fmt_at != std::string::npos && a1 != std::string::npos && a1 >= kPrefix.size(),
                  "{}: expected '\\n\\nAnswer1: ... \\n\\nAnswer format: ...'", d.where);
    // The format line lists answer1/answer2/...: its count is the number of choices.
    const std::string fmt_line = ins.substr(fmt_at + 17);
    const size_t n_choices = static_cast<size_t>(std::count(fmt_line.begin(), fmt_line.end(), '/')) + 1;
    JNAS_CHECK_IO(n_choices >= 2 && n_choices <= 26, "{}: {} choices in the answer format", d.where,
                  n_choices);
    std::vector<std::string> choices;
    size_t pos = a1 + 11;  // after "\n\nAnswer1: "
    for (size_t k = 2; k <= n_choices + 1; ++k) {
      size_t next = fmt_at;
      if (k <= n_choices) {
        next = ins.find(fmt::format(" Answer{}: ", k), pos);
        JNAS_CHECK_IO(next != std::string::npos && next < fmt_at, "{}: no 'Answer{}:'", d.where, k);
      }
      choices.push_back(ins.substr(pos, next - pos));
      pos = next + fmt::format(" Answer{}: ", k).size();
    }
    JNAS_CHECK_IO(answer.rfind("answer", 0) == 0 && answer.size() > 6, "{}: answer '{}' is not "
                  "'answerK'", d.where, answer);
    const std::string k = answer.substr(6);
    JNAS_CHECK_IO(k.size() <= 2 && std::all_of(k.begin(), k.end(), ::isdigit) &&
                      std::stoul(k) >= 1 && std::stoul(k) <= n_choices,
                  "{}: answer '{}' is not one of {} choices", d.where, answer, n_choices);
    d.fields["question"] = ins.substr(kPrefix.size(), a1 - kPrefix.size());
    d.fields["choices"] = std::move(choices);
    d.fields["label"] = std::to_string(std::stoul(k) - 1);
  }
  return raw;
}

using ReaderFn = std::vector<Doc> (*)(const std::string&);
struct ReaderRow {
  const char* name;
  ReaderFn read;
};
constexpr ReaderRow kReaders[] = {
    {"jsonl", read_jsonl},
    {"json", read_json_array},
    {"csv", read_csv_file},
    {"hellaswag_txt", read_hellaswag_txt},
    {"llm_adapters_mc", read_llm_adapters_mc},
};

const ReaderRow& reader_row(const std::string& name) {
  for (const auto& r : kReaders) {
    if (name == r.name) return r;
  }
  throw ConfigError(fmt::format("unknown reader '{}': expected {}", name, known_readers()));
}

std::string resolve(const std::string& data_dir, const std::string& p) {
  return fs::path(p).is_absolute() ? p : (fs::path(data_dir) / p).string();
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

std::unique_ptr<pcre2_code, CodeDeleter> compile(const std::string& regex, std::string* error) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                 PCRE2_DOTALL | PCRE2_UTF, &code, &offset, nullptr);
  if (re == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    *error = fmt::format("{} at offset {}", reinterpret_cast<const char*>(buf), offset);
  }
  return std::unique_ptr<pcre2_code, CodeDeleter>(re);
}

}  // namespace

bool is_known_reader(const std::string& name) {
  return std::any_of(std::begin(kReaders), std::end(kReaders),
                     [&](const ReaderRow& r) { return name == r.name; });
}

std::string known_readers() {
  std::string s;
  for (const auto& r : kReaders) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

std::vector<Doc> read_task_data(const ReaderOptions& o, const std::string& data_dir) {
  const ReaderRow& row = reader_row(o.reader);
  const std::string path = resolve(data_dir, o.path);
  std::vector<Doc> docs;
  if (fs::is_directory(path)) {
    JNAS_CHECK_IO(!o.file_suffix.empty(), "{} is a directory: the task needs 'file_suffix'", path);
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string();
      if (name.size() > o.file_suffix.size() &&
          name.compare(name.size() - o.file_suffix.size(), o.file_suffix.size(), o.file_suffix) == 0) {
        files.push_back(name);
      }
    }
    std::sort(files.begin(), files.end());
    JNAS_CHECK_IO(!files.empty(), "{}: no file ends in '{}'", path, o.file_suffix);
    for (const auto& name : files) {
      std::vector<Doc> part = row.read((fs::path(path) / name).string());
      if (o.limit > 0 && static_cast<int64_t>(part.size()) > o.limit) part.resize(o.limit);
      const std::string sub = name.substr(0, name.size() - o.file_suffix.size());
      for (auto& d : part) {
        d.fields["subtask"] = sub;
        docs.push_back(std::move(d));
      }
    }
    JNAS_CHECK_IO(o.labels_path.empty(), "{}: labels_path needs a single data file", path);
    return docs;
  }
  JNAS_CHECK_IO(fs::exists(path), "task data '{}' not found", path);
  docs = row.read(path);
  if (!o.labels_path.empty()) {
    const std::string lp = resolve(data_dir, o.labels_path);
    auto lines = split_lines(read_file(lp));
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    JNAS_CHECK_IO(lines.size() == docs.size(), "{}: {} labels for {} documents in {}", lp,
                  lines.size(), docs.size(), path);
    for (size_t i = 0; i < docs.size(); ++i) docs[i].fields["label"] = lines[i];
  }
  if (o.limit > 0 && static_cast<int64_t>(docs.size()) > o.limit) docs.resize(o.limit);
  return docs;
}

void check_derive_regex(const std::string& regex, const std::string& source) {
  std::string err;
  auto re = compile(regex, &err);
  JNAS_CHECK_CONFIG(re != nullptr, "{}: bad derive regex \"{}\": {}", source, regex, err);
  uint32_t names = 0;
  pcre2_pattern_info(re.get(), PCRE2_INFO_NAMECOUNT, &names);
  JNAS_CHECK_CONFIG(names > 0, "{}: derive regex \"{}\" has no named group (?<name>...)", source,
                    regex);
}

void apply_derive(Doc& doc, const std::string& field, const std::string& regex) {
  auto it = doc.fields.find(field);
  JNAS_CHECK_IO(it != doc.fields.end() && std::holds_alternative<std::string>(it->second),
                "{}: derive needs the string field '{}'", doc.where, field);
  const std::string subject = std::get<std::string>(it->second);
  std::string err;
  auto re = compile(regex, &err);
  JNAS_CHECK_CONFIG(re != nullptr, "bad derive regex \"{}\": {}", regex, err);
  std::unique_ptr<pcre2_match_data, MatchDeleter> md(
      pcre2_match_data_create_from_pattern(re.get(), nullptr));
  const int rc = pcre2_match(re.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                             0, 0, md.get(), nullptr);
  JNAS_CHECK_IO(rc > 0, "{}: field '{}' does not match the derive regex \"{}\"", doc.where, field,
                regex);
  uint32_t count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(re.get(), PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(re.get(), PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
  pcre2_pattern_info(re.get(), PCRE2_INFO_NAMETABLE, &table);
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  for (uint32_t i = 0; i < count; ++i) {
    const PCRE2_SPTR e = table + i * entry_size;
    const int group = (e[0] << 8) | e[1];  // the group number, big-endian, then the name
    const std::string name(reinterpret_cast<const char*>(e + 2));
    if (group >= rc || ov[2 * group] == PCRE2_UNSET) {
      doc.fields[name] = std::string();
    } else {
      doc.fields[name] = subject.substr(ov[2 * group], ov[2 * group + 1] - ov[2 * group]);
    }
  }
}

}  // namespace jointnas::eval
