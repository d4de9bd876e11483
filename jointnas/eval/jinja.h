// A small Jinja2 engine for lm-eval's task templates (doc_to_text, doc_to_choice, doc_to_target,
// description). No C++ Jinja library is packaged in Debian 12, so this implements the subset that
// lm-eval 0.4's standard task YAMLs use, with jinja2 3.1's semantics as lm-eval configures it
// (utils.apply_template: StrictUndefined, keep_trailing_newline=True, the regex_replace filter):
//   text, {{ expr }}, {% if / elif / else / endif %}, {% for x in ... [if c] %}...{% else %}
//   {% endfor %} with loop.index / index0 / first / last / length / revindex(0),
//   {% set name = expr %}, {# comments #}, whitespace control ({%- -%}, {{- -}}).
//   Expressions: literals (str with Python escapes, int, float, list, tuple, dict, true / false /
//   none in either case), names, a.b, a[i], a[i:j:k], calls of str / list / dict methods and
//   range(), filters (|name(args)), tests (is [not] name), + - * / // % ** ~, comparisons
//   (chained), in / not in, and / or / not, a if c else b.
// Values are JSON with Python semantics (pyvalue.h); output is Python str() of each value.
// Checked against Python's jinja2 by tests/fixtures/eval/jinja_goldens.json
// (scripts/make_jinja_goldens.py). Torch-free.
#pragma once

#include <memory>
#include <string>

#include "jointnas/core/json_util.h"

namespace jointnas::eval::jinja {

struct Node;

class Template {
 public:
  // Parses `source`. A syntax error is a ConfigError naming `where` (e.g. "task.yaml: doc_to_text").
  static Template parse(const std::string& source, const std::string& where);
  // Renders with the keys of `vars` (a JSON object) as variables. An undefined variable, a wrong
  // type or a failed method is a ConfigError naming `where` and, when given, `doc` (the item).
  std::string render(const Json& vars, const std::string& doc = "") const;
  const std::string& source() const { return source_; }

 private:
  std::shared_ptr<const Node> root_;
  std::string source_, where_;
};

// Parse + render in one call.
std::string render(const std::string& source, const Json& vars, const std::string& where);

}  // namespace jointnas::eval::jinja
