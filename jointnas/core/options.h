// Options declared once. An options struct lists its fields in one function,
//   template <class V> void fields(V& v, MyOptions& o) { v({"steps", "Alternating steps"}, o.steps, opt::at_least(1)); ... }
// found by argument-dependent lookup (declare it in the struct's namespace). The default of a
// field is its member initializer, nowhere else. Visitors walk that list to bind command-line
// flags (tools/jointnas/cli_options.h), read a run config section with typed, range-checked values
// and unknown-key errors (opt::read), write the effective options (opt::write: --dump-config,
// stages.json) and produce a child stage's arguments (opt::to_args). Torch-free.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::opt {

// How a field is named and explained. The run config key is `name` (snake_case); the flag is
// "--" + `flag` when given, else the name kebab-cased. `alias`: an older flag spelling that still
// parses (and says it is deprecated). `required`: no default, the user must give it.
struct Key {
  const char* name;
  const char* help;
  const char* flag = nullptr;
  const char* alias = nullptr;
  bool required = false;
};
std::string flag_of(const Key& k);   // "--steps", "--train-batch", "--model" (of "-m,--model")
std::string kebab(const char* name);  // "lr_arch" -> "lr-arch"

// Inclusive bounds of a number; doubles must also be finite.
template <class T>
struct Bounds {
  T lo = std::numeric_limits<T>::lowest();
  T hi = std::numeric_limits<T>::max();
};
template <class T>
Bounds<T> at_least(T lo) {
  return {lo, std::numeric_limits<T>::max()};
}
template <class T>
Bounds<T> in(T lo, T hi) {
  return {lo, hi};
}

// The allowed values of a string option (empty: any string).
using Choices = std::vector<std::string>;

// A file or directory option. In a run config a relative path is relative to the config file's
// folder and "$SHARED/..." is the shared data folder (JNAS_SHARED_DIR, else ../shared beside the
// repository); on the command line it is taken as given.
struct Path {
  std::string value;
  bool empty() const { return value.empty(); }
  const std::string& str() const { return value; }
  operator const std::string&() const { return value; }  // NOLINT: a path reads as its string
  bool operator==(const Path&) const = default;
};

// An enum option: the names of its values, in order.
template <class E>
using Names = std::vector<std::pair<E, const char*>>;
template <class E>
const char* name_of(const Names<E>& names, E e) {
  for (const auto& [v, n] : names) {
    if (v == e) return n;
  }
  return "?";
}

// Where a value came from, for messages: "configs/runs/x.yaml: search.steps".
struct Origin {
  std::string source;  // the file (or "command line")
  std::string prefix;  // "search." for a section
  std::string where(const Key& k) const { return source + ": '" + prefix + k.name + "'"; }
};

// Resolves a run config path (see Path).
std::string resolve_path(const std::string& p, const std::string& config_dir);

// ---- visitors -------------------------------------------------------------------------------

// Reads fields from the JSON form of a config section. Every value is type- and range-checked
// here, before any stage runs; ConfigError names the file and the key, says what was expected and
// what was found. A key that no field declares is an error too (check_unknown, called by read()).
class Reader {
 public:
  Reader(const Json& j, Origin origin, std::string config_dir)
      : j_(j), origin_(std::move(origin)), dir_(std::move(config_dir)) {}

  template <class T>
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  void operator()(const Key& k, T& x, Bounds<T> b = {}) {
    if (const Json* v = take(k)) x = static_cast<T>(integer(k, *v, to_i64(b.lo), to_i64(b.hi)));
  }
  void operator()(const Key& k, double& x, Bounds<double> b = {});
  void operator()(const Key& k, bool& x);
  void operator()(const Key& k, std::string& x, const Choices& c = {});
  void operator()(const Key& k, Path& x);
  void operator()(const Key& k, std::vector<std::string>& x, const Choices& c = {});
  void operator()(const Key& k, std::vector<int64_t>& x, Bounds<int64_t> b = {});
  template <class E>
    requires std::is_enum_v<E>
  void operator()(const Key& k, E& x, const Names<E>& names) {
    if (const Json* v = take(k)) {
      const std::string s = enum_text(k, *v, names_text(names));
      for (const auto& [e, n] : names) {
        if (s == n) x = e;
      }
    }
  }
  // A nested mapping: `fields(sub_visitor, sub)` over j[key] (absent: defaults stay).
  template <class S>
  void section(const Key& k, S& s) {
    if (const Json* v = take(k)) {
      Reader sub(*v, Origin{origin_.source, origin_.prefix + k.name + "."}, dir_);
      sub.expect_mapping(k.name);
      fields(sub, s);
      sub.check_unknown();
    }
  }
  void expect_mapping(const char* what) const;
  // ConfigError for the first key of the mapping that no field took.
  void check_unknown() const;
  // Whether the mapping has `key` (for fields whose absence means something).
  bool has(const char* key) const { return j_.is_object() && j_.contains(key); }

 private:
  // A bound as int64 (an unsigned maximum becomes INT64_MAX: values are read as int64).
  template <class T>
  static int64_t to_i64(T v) {
    if constexpr (std::is_unsigned_v<T>) {
      return v > static_cast<T>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                     : static_cast<int64_t>(v);
    } else {
      return static_cast<int64_t>(v);
    }
  }
  const Json* take(const Key& k);
  int64_t integer(const Key& k, const Json& v, int64_t lo, int64_t hi) const;
  std::string enum_text(const Key& k, const Json& v, const std::string& names) const;
  template <class E>
  static std::string names_text(const Names<E>& names) {
    std::string s;
    for (const auto& [e, n] : names) s += (s.empty() ? "" : ", ") + std::string(n);
    return s;
  }
  const Json& j_;
  Origin origin_;
  std::string dir_;
  std::vector<std::string> taken_;
};

// Writes the fields (every one, defaults included) into a JSON object: --dump-config.
class Writer {
 public:
  explicit Writer(Json& out) : out_(out) { out_ = Json::object(); }
  template <class T>
    requires std::is_arithmetic_v<T>
  void operator()(const Key& k, T& x, Bounds<T> = {}) {
    out_[k.name] = x;
  }
  void operator()(const Key& k, bool& x) { out_[k.name] = x; }
  void operator()(const Key& k, std::string& x, const Choices& = {}) { out_[k.name] = x; }
  void operator()(const Key& k, Path& x) { out_[k.name] = x.value; }
  void operator()(const Key& k, std::vector<std::string>& x, const Choices& = {}) { out_[k.name] = x; }
  void operator()(const Key& k, std::vector<int64_t>& x, Bounds<int64_t> = {}) { out_[k.name] = x; }
  template <class E>
    requires std::is_enum_v<E>
  void operator()(const Key& k, E& x, const Names<E>& names) {
    out_[k.name] = name_of(names, x);
  }
  template <class S>
  void section(const Key& k, S& s) {
    Json sub;
    Writer w(sub);
    fields(w, s);
    out_[k.name] = sub;
  }

 private:
  Json& out_;
};

// The command-line arguments that reproduce the fields (every one, flattened: sections add no
// prefix, their fields carry their own flags): how `run` and `pareto` start a stage as a child
// process. Empty strings and empty lists are left out (their flags mean "not given").
class ArgsWriter {
 public:
  explicit ArgsWriter(std::vector<std::string>& out) : out_(out) {}
  template <class T>
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  void operator()(const Key& k, T& x, Bounds<T> = {}) {
    add(k, std::to_string(x));
  }
  void operator()(const Key& k, double& x, Bounds<double> = {});
  void operator()(const Key& k, bool& x);
  void operator()(const Key& k, std::string& x, const Choices& = {}) {
    if (!x.empty()) add(k, x);
  }
  void operator()(const Key& k, Path& x) {
    if (!x.empty()) add(k, x.value);
  }
  void operator()(const Key& k, std::vector<std::string>& x, const Choices& = {});
  void operator()(const Key& k, std::vector<int64_t>& x, Bounds<int64_t> = {});
  template <class E>
    requires std::is_enum_v<E>
  void operator()(const Key& k, E& x, const Names<E>& names) {
    add(k, name_of(names, x));
  }
  template <class S>
  void section(const Key&, S& s) {
    fields(*this, s);
  }

 private:
  void add(const Key& k, const std::string& v);
  std::vector<std::string>& out_;
};

// ---- entry points ---------------------------------------------------------------------------

// Reads `s` from the mapping `j` (the whole document or one section), checking every value and
// refusing unknown keys.
template <class S>
void read(const Json& j, S& s, const Origin& origin, const std::string& config_dir) {
  Reader r(j, origin, config_dir);
  r.expect_mapping(origin.prefix.empty() ? "the document" : origin.prefix.c_str());
  fields(r, s);
  r.check_unknown();
}

template <class S>
Json write(const S& s) {
  Json j;
  Writer w(j);
  fields(w, const_cast<S&>(s));  // the writer only reads
  return j;
}

template <class S>
std::vector<std::string> to_args(const S& s) {
  std::vector<std::string> a;
  ArgsWriter w(a);
  fields(w, const_cast<S&>(s));  // the writer only reads
  return a;
}

}  // namespace jointnas::opt
