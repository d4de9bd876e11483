// Binds an options struct (core/options.h) to CLI11 flags: one flag per field, named and explained
// by the field's Key, its default shown from the member initializer, its range or choices checked
// at parse time. `--dump-config` prints the effective options (every default included).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "jointnas/core/options.h"

namespace jointnas::cli {

// A number that must be finite and inside [lo, hi] (CLI11's Range lets "nan" through).
CLI::Validator finite_in(double lo, double hi);
// Logs "<alias> is deprecated: use <flag>" when a deprecated spelling is used.
CLI::Validator deprecated(const std::string& alias, const std::string& now);

class CliBinder {
 public:
  explicit CliBinder(CLI::App* app) : app_(app) {}

  template <class T>
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  void operator()(const opt::Key& k, T& x, opt::Bounds<T> b = {}) {
    for (auto* o : add(k, x)) o->check(CLI::Range(b.lo, b.hi));
  }
  void operator()(const opt::Key& k, double& x, opt::Bounds<double> b = {}) {
    for (auto* o : add(k, x)) o->check(finite_in(b.lo, b.hi));
  }
  void operator()(const opt::Key& k, bool& x) {
    app_->add_flag(names(k), x, k.help)->capture_default_str();
    if (k.alias != nullptr) app_->add_flag(k.alias, x, "")->group("")->check(deprecated(k.alias, names(k)));
  }
  void operator()(const opt::Key& k, std::string& x, const opt::Choices& c = {}) {
    for (auto* o : add(k, x)) {
      if (!c.empty()) o->check(CLI::IsMember(c));
    }
  }
  void operator()(const opt::Key& k, opt::Path& x) { add(k, x.value); }
  void operator()(const opt::Key& k, std::vector<std::string>& x, const opt::Choices& c = {}) {
    for (auto* o : add(k, x)) {
      o->delimiter(',');
      if (!c.empty()) o->check(CLI::IsMember(c));
    }
  }
  void operator()(const opt::Key& k, std::vector<int64_t>& x, opt::Bounds<int64_t> b = {}) {
    for (auto* o : add(k, x)) o->delimiter(',')->check(CLI::Range(b.lo, b.hi));
  }
  template <class E>
    requires std::is_enum_v<E>
  void operator()(const opt::Key& k, E& x, const opt::Names<E>& names) {
    std::map<std::string, E> m;
    std::vector<std::string> keys;
    for (const auto& [e, n] : names) m[n] = e, keys.push_back(n);
    auto set = [&x, m](const std::string& s) { x = m.at(s); };
    CLI::Option* o = app_->add_option_function<std::string>(names_of(k), set, k.help);
    o->check(CLI::IsMember(keys))->default_str(opt::name_of(names, x))->type_name("TEXT");
    if (k.required) o->required();
    if (k.alias != nullptr) {
      app_->add_option_function<std::string>(k.alias, set, "")->group("")->check(CLI::IsMember(keys))->check(
          deprecated(k.alias, names_of(k)));
    }
  }
  template <class S>
  void section(const opt::Key&, S& s) {
    fields(*this, s);
  }

 private:
  // "--steps", "-m,--model" (a flag spec of its own), or the positional name when the flag is "".
  static std::string names_of(const opt::Key& k) { return names(k); }
  static std::string names(const opt::Key& k) {
    if (k.flag != nullptr && *k.flag == '\0') return k.name;
    if (k.flag != nullptr && *k.flag == '-') return k.flag;
    return opt::flag_of(k);
  }
  // The option, and its deprecated spelling bound to the same variable (hidden from --help).
  template <class T>
  std::vector<CLI::Option*> add(const opt::Key& k, T& x) {
    CLI::Option* o = app_->add_option(names(k), x, k.help)->capture_default_str();
    if (k.required) o->required();
    if (k.alias == nullptr) return {o};
    CLI::Option* a = app_->add_option(k.alias, x, "")->group("");
    a->check(deprecated(k.alias, names(k)));
    o->excludes(a);
    return {o, a};
  }
  CLI::App* app_;
};

// Binds every field of `o` to flags of `app`, and `--dump-config`.
template <class S>
void bind_options(CLI::App* app, S& o, bool& dump_config) {
  CliBinder b(app);
  fields(b, o);
  app->add_flag("--dump-config", dump_config, "Print the effective options (every default included) as JSON and exit");
}

}  // namespace jointnas::cli
