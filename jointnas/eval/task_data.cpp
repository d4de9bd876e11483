// Local task data readers, one function per layout and a table from names to them (see
// task_data.h). Task data is untrusted input: sizes are bounded, paths confined, every error names
// the file and line.
#include "jointnas/eval/task_data.h"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "jointnas/core/error.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kMaxFileBytes = int64_t{1} << 30;  // 1 GiB: far above any task split
constexpr size_t kMaxDirFiles = 4096;

std::string read_file(const std::string& path) {
  std::error_code ec;
  JNAS_CHECK_IO(fs::is_regular_file(path, ec), "task data '{}' is not a readable file", path);
  const auto size = fs::file_size(path, ec);
  JNAS_CHECK_IO(!ec, "cannot read task data '{}': {}", path, ec.message());
  JNAS_CHECK_IO(static_cast<int64_t>(size) <= kMaxFileBytes, "{}: {} bytes, over the 1 GiB limit", path, size);
  std::ifstream in(path, std::ios::binary);
  JNAS_CHECK_IO(in.good(), "cannot open task data '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (auto bad = find_invalid_utf8(text)) {
    const int64_t line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(*bad), '\n');
    throw IoError(fmt::format("{}:{}: not UTF-8 (byte offset {})", path, line, *bad));
  }
  return text;
}

// Lines as Python's text mode reads them (universal newlines: \r\n and \r end a line too).
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      lines.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += text[i];
    }
  }
  if (!cur.empty()) lines.push_back(std::move(cur));
  return lines;
}

Doc make_doc(Json fields, std::string where) {
  JNAS_CHECK_IO(fields.is_object(), "{}: expected a JSON object, got {}", where, py::type_name(fields));
  return Doc{std::move(fields), std::move(where), ""};
}

std::vector<Doc> read_jsonl(const std::string& path) {
  std::vector<Doc> docs;
  const auto lines = split_lines(read_file(path));
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, i + 1);
    docs.push_back(make_doc(parse_json(lines[i], where), where));
  }
  return docs;
}

// What load_dataset("json") accepts: a JSON array of objects, or JSON Lines.
std::vector<Doc> read_json(const std::string& path) {
  const std::string text = read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '[') return read_jsonl(path);
  const Json j = parse_json(text, path);
  std::vector<Doc> docs;
  for (size_t i = 0; i < j.size(); ++i) docs.push_back(make_doc(j[i], fmt::format("{}: item {}", path, i)));
  return docs;
}

// RFC 4180 records (quoted fields may hold commas, newlines and doubled quotes) with the line each
// starts on.
std::vector<std::pair<int64_t, std::vector<std::string>>> csv_records(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::pair<int64_t, std::vector<std::string>>> records;
  std::vector<std::string> rec;
  std::string field;
  bool quoted = false, started = false;
  int64_t line = 1, rec_line = 1;
  auto end_field = [&] {
    rec.push_back(std::move(field));
    field.clear();
    started = false;
  };
  auto end_record = [&] {
    end_field();
    if (!(rec.size() == 1 && rec[0].empty())) records.emplace_back(rec_line, std::move(rec));
    rec.clear();
    rec_line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        line += c == '\n';
        field += c;
      }
    } else if (c == '"') {
      JNAS_CHECK_IO(!started, "{}:{}: quote inside an unquoted field", path, line);
      quoted = started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++line;
      end_record();
    } else {
      field += c;
      started = true;
    }
  }
  JNAS_CHECK_IO(!quoted, "{}:{}: unterminated quoted field (record from line {})", path, line, rec_line);
  if (started || !rec.empty()) end_record();
  JNAS_CHECK_IO(!records.empty(), "{}: empty CSV, expected a header row", path);
  for (size_t r = 1; r < records.size(); ++r) {
    JNAS_CHECK_IO(records[r].second.size() == records[0].second.size(), "{}:{}: {} fields, the header has {}",
                  path, records[r].first, records[r].second.size(), records[0].second.size());
  }
  return records;
}

// load_dataset("csv") (pandas.read_csv): a column of integers is int, of numbers float, else str;
// empty cells are missing (None).
std::vector<Doc> read_csv(const std::string& path) {
  const auto records = csv_records(path);
  const auto& header = records[0].second;
  std::vector<int> kind(header.size(), 0);  // 0 int, 1 float, 2 str
  std::vector<std::vector<Json>> parsed(records.size());
  for (size_t r = 1; r < records.size(); ++r) {
    for (size_t k = 0; k < header.size(); ++k) {
      const std::string& v = records[r].second[k];
      Json x = nullptr;
      if (!v.empty()) {
        try {
          x = py::literal_eval(py::strip(v));
        } catch (const Error&) {
          x = v;
        }
        if (!(x.is_number() && !x.is_boolean())) x = v;
      }
      if (x.is_string()) kind[k] = 2;
      else if (x.is_number_float()) kind[k] = std::max(kind[k], 1);
      parsed[r].push_back(x);
    }
  }
  std::vector<Doc> docs;
  for (size_t r = 1; r < records.size(); ++r) {
    Json fields = Json::object();
    for (size_t k = 0; k < header.size(); ++k) {
      const Json& x = parsed[r][k];
      fields[header[k]] = x.is_null() ? x : kind[k] == 2 ? Json(records[r].second[k]) : kind[k] == 1 ? Json(x.get<double>()) : x;
    }
    docs.push_back(make_doc(std::move(fields), fmt::format("{}:{}", path, records[r].first)));
  }
  return docs;
}

const std::string& str_field(const Doc& d, const char* key) {
  JNAS_CHECK_IO(d.fields.contains(key) && d.fields[key].is_string(), "{}: missing string field '{}'", d.where, key);
  return d.fields[key].get_ref<const std::string&>();
}

Json int_of(const Json& v, const std::string& where, const char* key) {
  if (v.is_number_integer()) return v;
  JNAS_CHECK_IO(v.is_string() && py::is_digit_string(py::strip(v.get<std::string>())) && v.get<std::string>().size() < 12,
                "{}: field '{}' = {} is not an integer", where, key, v.dump());
  return static_cast<int64_t>(std::stoll(py::strip(v.get<std::string>())));
}

// llm-foundry boolq.jsonl {"query": "Passage: <p>\nQuestion: <q>?", "gold": 0|1}.
std::vector<Doc> read_llm_foundry_boolq(const std::string& path) {
  std::vector<Doc> docs = read_jsonl(path);
  for (auto& d : docs) {
    const std::string q = str_field(d, "query");
    const size_t at = q.rfind("\nQuestion: ");
    JNAS_CHECK_IO(q.rfind("Passage: ", 0) == 0 && at != std::string::npos && q.size() > at + 11 && q.back() == '?',
                  "{}: query is not 'Passage: ...\\nQuestion: ...?'", d.where);
    Json gold = int_of(d.fields.value("gold", Json()), d.where, "gold");
    d.fields = Json{{"passage", q.substr(9, at - 9)}, {"question", q.substr(at + 11, q.size() - at - 12)}, {"label", gold}};
  }
  return docs;
}

// llm-foundry winogrande.jsonl {"context_options": [a, b], "continuation", "gold"}: with p the
// common prefix of a and b, sentence = p + "_ " + continuation and option_i = context_i[len(p):]
// give back lm-eval's doc_to_choice (sentence[:idx] + option) and doc_to_target exactly.
std::vector<Doc> read_llm_foundry_winogrande(const std::string& path) {
  std::vector<Doc> docs = read_jsonl(path);
  for (auto& d : docs) {
    const Json& opts = d.fields.value("context_options", Json());
    JNAS_CHECK_IO(opts.is_array() && opts.size() == 2 && opts[0].is_string() && opts[1].is_string(),
                  "{}: context_options must be two strings", d.where);
    const auto a = py::code_points(opts[0].get<std::string>()), b = py::code_points(opts[1].get<std::string>());
    size_t p = 0;
    while (p < a.size() && p < b.size() && a[p] == b[p]) ++p;
    const std::string prefix = py::from_code_points(a, 0, p);
    JNAS_CHECK_IO(prefix.find('_') == std::string::npos, "{}: the contexts' common prefix holds '_'", d.where);
    const int64_t gold = int_of(d.fields.value("gold", Json()), d.where, "gold").get<int64_t>();
    JNAS_CHECK_IO(gold == 0 || gold == 1, "{}: gold must be 0 or 1", d.where);
    d.fields = Json{{"sentence", prefix + "_ " + str_field(d, "continuation")},
                    {"option1", py::from_code_points(a, p, a.size())},
                    {"option2", py::from_code_points(b, p, b.size())},
                    {"answer", std::to_string(gold + 1)}};
  }
  return docs;
}

// llama.cpp's HellaSwag text (6 lines per item: "<activity_label>: <ctx>", gold, 4 endings).
// HF hellaswag has ctx_a and ctx_b apart; this format merged them, so ctx_b is recovered as the
// text after the last ". " / "? " / "! " when it starts with a lowercase ASCII letter and does not
// end a sentence, else empty (docs/eval.md, "HellaSwag data").
std::vector<Doc> read_hellaswag_txt(const std::string& path) {
  const auto lines = split_lines(read_file(path));
  size_t n = lines.size();
  while (n > 0 && lines[n - 1].empty()) --n;
  JNAS_CHECK_IO(n % 6 == 0, "{}: {} lines, expected 6 per item (context, gold, 4 endings)", path, n);
  std::vector<Doc> docs;
  for (size_t i = 0; i < n; i += 6) {
    const std::string where = fmt::format("{}:{}", path, i + 1);
    const std::string& head = lines[i];
    const size_t colon = head.find(": ");
    JNAS_CHECK_IO(colon != std::string::npos, "{}: expected '<activity label>: <context>'", where);
    const std::string rest = head.substr(colon + 2);
    size_t cut = std::string::npos;
    for (const char* end : {". ", "? ", "! "}) {
      const size_t k = rest.rfind(end);
      if (k != std::string::npos && (cut == std::string::npos || k > cut)) cut = k;
    }
    std::string ctx_a = rest, ctx_b;
    if (cut != std::string::npos) {
      const std::string tail = rest.substr(cut + 2);
      if (!tail.empty() && tail[0] >= 'a' && tail[0] <= 'z' && tail.back() != '.' && tail.back() != '?' &&
          tail.back() != '!') {
        ctx_a = rest.substr(0, cut + 1);
        ctx_b = tail;
      }
    }
    docs.push_back(make_doc(Json{{"activity_label", head.substr(0, colon)}, {"ctx_a", ctx_a}, {"ctx_b", ctx_b},
                                 {"ctx", rest}, {"label", lines[i + 1]},
                                 {"endings", Json::array({lines[i + 2], lines[i + 3], lines[i + 4], lines[i + 5]})}},
                            where));
  }
  return docs;
}

// LLM-Adapters ARC: "Please choose the correct answer to the question: <q>\n\nAnswer1: <a>
// Answer2: <b> ...\n\nAnswer format: answer1/answer2/...", answer "answerK".
std::vector<Doc> read_llm_adapters_arc(const std::string& path) {
  std::vector<Doc> docs = read_json(path);
  const std::string kPrefix = "Please choose the correct answer to the question: ";
  for (auto& d : docs) {
    const std::string ins = str_field(d, "instruction"), answer = str_field(d, "answer");
    JNAS_CHECK_IO(ins.rfind(kPrefix, 0) == 0, "{}: instruction does not start with \"{}\"", d.where, kPrefix);
    const size_t fmt_at = ins.rfind("\n\nAnswer format: ");
    const size_t a1 = fmt_at == std::string::npos ? fmt_at : ins.rfind("\n\nAnswer1: ", fmt_at);
    JNAS_CHECK_IO(fmt_at != std::string::npos && a1 != std::string::npos && a1 >= kPrefix.size(),
                  "{}: expected '\\n\\nAnswer1: ... \\n\\nAnswer format: ...'", d.where);
    const std::string fmt_line = ins.substr(fmt_at + 17);
    const size_t n = static_cast<size_t>(std::count(fmt_line.begin(), fmt_line.end(), '/')) + 1;
    JNAS_CHECK_IO(n >= 2 && n <= 26, "{}: {} choices in the answer format", d.where, n);
    Json text = Json::array(), label = Json::array();
    size_t pos = a1 + 11;
    for (size_t k = 2; k <= n + 1; ++k) {
      size_t next = fmt_at;
      const std::string marker = fmt::format(" Answer{}: ", k);
      if (k <= n) {
        next = ins.find(marker, pos);
        JNAS_CHECK_IO(next != std::string::npos && next < fmt_at, "{}: no 'Answer{}:'", d.where, k);
      }
      text.push_back(ins.substr(pos, next - pos));
      label.push_back(std::string(1, static_cast<char>('A' + k - 2)));
      pos = next + marker.size();
    }
    const std::string k = answer.size() > 6 && answer.rfind("answer", 0) == 0 ? answer.substr(6) : "";
    JNAS_CHECK_IO(py::is_digit_string(k) && k.size() <= 2 && std::stoul(k) >= 1 && std::stoul(k) <= n,
                  "{}: answer '{}' is not one of answer1..answer{}", d.where, answer, n);
    d.fields = Json{{"question", ins.substr(kPrefix.size(), a1 - kPrefix.size())},
                    {"choices", Json{{"text", text}, {"label", label}}},
                    {"answerKey", std::string(1, static_cast<char>('A' + std::stoul(k) - 1))}};
  }
  return docs;
}

// One MMLU subject file (question, choice0..choice3, answer), strings kept as strings.
std::vector<Doc> read_mmlu_csv(const std::string& path, const std::string& subject) {
  const auto records = csv_records(path);
  const auto& h = records[0].second;
  const std::vector<std::string> want = {"question", "choice0", "choice1", "choice2", "choice3", "answer"};
  JNAS_CHECK_IO(h == want, "{}: header must be question,choice0,choice1,choice2,choice3,answer", path);
  std::vector<Doc> docs;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& f = records[r].second;
    const std::string where = fmt::format("{}:{}", path, records[r].first);
    Json doc{{"question", f[0]}, {"subject", subject}, {"choices", Json::array({f[1], f[2], f[3], f[4]})},
             {"answer", int_of(Json(f[5]), where, "answer")}};
    docs.push_back(Doc{std::move(doc), where, subject});
  }
  return docs;
}

// wikitext_document_level: a new document starts at each "= Title =" line (lm-eval 0.3's
// datasets/wikitext/wikitext.py _generate_examples); empty leading documents are skipped, the last
// one is kept.
std::vector<Doc> read_wikitext_raw(const std::string& path) {
  std::string text = read_file(path);
  text = py::replace(py::replace(text, "\r\n", "\n"), "\r", "\n");  // text mode
  const std::vector<std::string> lines = py::split(text, std::string("\n"));
  std::vector<Doc> docs;
  std::vector<std::string> cur;
  size_t start_line = 1;
  auto page_of = [&] {
    std::string page;
    for (size_t i = 0; i < cur.size(); ++i) page += (i ? "\n" : "") + cur[i];
    return page;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string r = py::strip(py::replace(py::replace(lines[i], "= = =", "==="), "= =", "=="));
    if (r.rfind("= ", 0) == 0 && r.size() >= 2 && r.compare(r.size() - 2, 2, " =") == 0) {
      const std::string page = page_of();
      if (!py::strip(page).empty()) docs.push_back(make_doc(Json{{"page", page}}, fmt::format("{}:{}", path, start_line)));
      cur.clear();
      start_line = i + 1;
    }
    cur.push_back(lines[i]);
  }
  docs.push_back(make_doc(Json{{"page", page_of()}}, fmt::format("{}:{}", path, start_line)));
  return docs;
}

using FileReader = std::vector<Doc> (*)(const std::string&);
struct ReaderRow {
  const char* name;
  FileReader read;  // nullptr: a directory reader
};
constexpr ReaderRow kReaders[] = {
    {"json", read_json},
    {"jsonl", read_jsonl},
    {"csv", read_csv},
    {"llm_foundry_boolq", read_llm_foundry_boolq},
    {"llm_foundry_winogrande", read_llm_foundry_winogrande},
    {"hellaswag_txt", read_hellaswag_txt},
    {"llm_adapters_arc", read_llm_adapters_arc},
    {"mmlu_csv_dir", nullptr},
    {"wikitext_raw", read_wikitext_raw},
};

const ReaderRow& reader_row(const std::string& name) {
  for (const auto& r : kReaders) {
    if (name == r.name) return r;
  }
  throw ConfigError(fmt::format("unknown reader '{}': expected {}", name, known_readers()));
}

std::vector<Doc> read_mmlu_dir(const std::string& dir, const std::string& where, int64_t limit) {
  std::error_code ec;
  JNAS_CHECK_IO(fs::is_directory(dir, ec), "{}: '{}' is not a directory (mmlu_csv_dir reads <subject>_<split>.csv "
                "files from one)", where, dir);
  const std::string suffix = "_" + fs::path(dir).filename().string() + ".csv";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      names.push_back(name);
    }
    JNAS_CHECK_IO(names.size() <= kMaxDirFiles, "{}: more than {} files", dir, kMaxDirFiles);
  }
  JNAS_CHECK_IO(!ec, "{}: cannot list '{}': {}", where, dir, ec.message());
  std::sort(names.begin(), names.end());
  JNAS_CHECK_IO(!names.empty(), "{}: no file in '{}' ends in '{}'", where, dir, suffix);
  std::vector<Doc> docs;
  for (const auto& name : names) {
    const std::string file = resolve_inside(dir, name, where, "task data");
    std::vector<Doc> part = read_mmlu_csv(file, name.substr(0, name.size() - suffix.size()));
    if (limit > 0 && static_cast<int64_t>(part.size()) > limit) part.resize(static_cast<size_t>(limit));
    for (auto& d : part) docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace

bool is_known_reader(const std::string& name) {
  return std::any_of(std::begin(kReaders), std::end(kReaders), [&](const ReaderRow& r) { return name == r.name; });
}

std::string known_readers() {
  std::string s;
  for (const auto& r : kReaders) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

std::string resolve_inside(const std::string& dir, const std::string& name, const std::string& source,
                           const char* what) {
  auto reject = [&](const char* why) {
    throw IoError(fmt::format("{}: refusing {} path '{}' ({})", source, what, name, why),
                  "task files name paths relative to the data directory (--data-dir) that stay inside it");
  };
  if (name.empty()) reject("empty");
  if (name.find('\0') != std::string::npos) reject("contains NUL");
  if (name.size() > 4096) reject("too long");
  const fs::path p(name);
  if (p.is_absolute() || name.front() == '/') reject("absolute path");
  for (const auto& part : p) {
    if (part == ".." || part == ".") reject("'..' or '.' component");
  }
  if (name.find("//") != std::string::npos) reject("empty component");
  const fs::path joined = fs::path(dir) / p;
  // A symlink inside the directory may not lead out of it (resolved when the target exists).
  char real_dir[PATH_MAX], real_file[PATH_MAX];
  if (::realpath(joined.c_str(), real_file) != nullptr && ::realpath(dir.c_str(), real_dir) != nullptr) {
    const std::string rd(real_dir), rf(real_file);
    if (rf.size() <= rd.size() || rf.compare(0, rd.size(), rd) != 0 || rf[rd.size()] != '/') {
      reject("resolves outside the directory through a symlink");
    }
  }
  return joined.string();
}

std::vector<Doc> read_data_file(const std::string& reader, const std::string& path) {
  const ReaderRow& row = reader_row(reader);
  if (row.read == nullptr) return read_mmlu_dir(path, path, 0);
  return row.read(path);
}

std::vector<Doc> read_split(const SplitSource& src, const std::string& data_dir, int64_t limit) {
  const ReaderRow& row = reader_row(src.reader);
  std::error_code ec;
  JNAS_CHECK_IO(fs::is_directory(data_dir, ec), "{}: the data directory '{}' does not exist", src.where, data_dir);
  std::vector<Doc> docs;
  for (const auto& rel : src.paths) {
    const std::string path = resolve_inside(data_dir, rel, src.where, "task data");
    if (!fs::exists(path, ec)) {
      throw IoError(fmt::format("{}: task data '{}' not found (data directory {})", src.where, rel, data_dir),
                    "pass --data-dir DIR or set JNAS_DATA_DIR to the directory the task's paths are relative to");
    }
    std::vector<Doc> part = row.read == nullptr ? read_mmlu_dir(path, src.where, limit) : row.read(path);
    for (auto& d : part) docs.push_back(std::move(d));
  }
  if (!src.labels.empty()) {
    const std::string lp = resolve_inside(data_dir, src.labels, src.where, "task data");
    auto lines = split_lines(read_file(lp));
    while (!lines.empty() && py::strip(lines.back()).empty()) lines.pop_back();
    JNAS_CHECK_IO(lines.size() == docs.size(), "{}: {} labels for {} documents", lp, lines.size(), docs.size());
    for (size_t i = 0; i < docs.size(); ++i) {
      const std::string l = py::strip(lines[i]);
      docs[i].fields["label"] = py::is_digit_string(l) && l.size() < 12 ? Json(std::stoll(l)) : Json(l);
    }
  }
  if (row.read != nullptr && limit > 0 && static_cast<int64_t>(docs.size()) > limit) {
    docs.resize(static_cast<size_t>(limit));
  }
  return docs;
}

std::string find_project_root(const std::string& start) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(start.empty() ? fs::current_path(ec) : fs::path(start), ec);
  for (int i = 0; i < 16 && !p.empty(); ++i) {
    if (fs::is_directory(p / "configs" / "tasks", ec)) return p.string();
    if (p == p.root_path()) break;
    p = p.parent_path();
  }
  return "";
}

namespace {
std::string project_default(const std::string& exe, const char* env, const std::string& rel) {
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  std::string root = exe.empty() ? "" : find_project_root(exe);
  if (root.empty()) root = find_project_root("");
  return root.empty() ? rel : (fs::path(root) / rel).lexically_normal().string();
}
}  // namespace

std::string default_data_dir(const std::string& exe) {
  return project_default(exe, "JNAS_DATA_DIR", "../shared/data");
}

std::string default_task_dir(const std::string& exe) {
  return project_default(exe, "JNAS_TASK_DIR", "configs/tasks");
}

}  // namespace jointnas::eval
