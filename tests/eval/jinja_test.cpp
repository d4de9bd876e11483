// The Jinja engine against Python's jinja2 as lm-eval configures it (goldens:
// scripts/make_jinja_goldens.py -> tests/fixtures/eval/jinja_goldens.json), plus its errors.
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/eval/jinja.h"
#include "jointnas/eval/pyre.h"
#include "jointnas/eval/pyvalue.h"
#include "tensor_assert.h"

using namespace jointnas;
using jointnas::testing::fixture_path;

// Every case renders to jinja2's exact output (or throws where jinja2 raised), and templates whose
// output lm-eval passes through ast.literal_eval give the same value.
TEST(Jinja, MatchesPythonJinja2) {
  const Json g = read_json_file(fixture_path("eval/jinja_goldens.json"));
  ASSERT_GE(g["cases"].size(), 60u);
  for (const auto& c : g["cases"]) {
    const std::string tmpl = c["template"].get<std::string>();
    SCOPED_TRACE(tmpl);
    if (c.contains("error")) {
      EXPECT_THROW(eval::jinja::render(tmpl, c["vars"], "golden"), ConfigError);
      continue;
    }
    std::string got;
    ASSERT_NO_THROW(got = eval::jinja::render(tmpl, c["vars"], "golden"));
    EXPECT_EQ(got, c["out"].get<std::string>());
    if (c.contains("literal")) {
      EXPECT_TRUE(eval::py::equal(eval::py::literal_eval(got), c["literal"]));
    }
  }
}

TEST(Jinja, SyntaxErrorsNameTheTaskFileAndKey) {
  for (const char* bad : {"{{ x", "{% if x %}a", "{% for %}", "{{ x | nofilter }}", "{{ x is nothing }}",
                          "{% macro m() %}{% endmacro %}", "{{ (1 }}", "{# open", "{% endif %}", "{{ ) }}"}) {
    SCOPED_TRACE(bad);
    try {
      eval::jinja::Template::parse(bad, "task.yaml: doc_to_text");
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("task.yaml: doc_to_text"), std::string::npos) << e.what();
    }
  }
  // A render error names the document too.
  const auto t = eval::jinja::Template::parse("{{ missing }}", "task.yaml: doc_to_target");
  try {
    t.render(Json::object(), "data.jsonl:7");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("task.yaml: doc_to_target"), std::string::npos) << m;
    EXPECT_NE(m.find("data.jsonl:7"), std::string::npos) << m;
    EXPECT_NE(m.find("'missing' is undefined"), std::string::npos) << m;
  }
}

// Untrusted templates: deep nesting, huge ranges and repetitions are errors, not crashes.
TEST(Jinja, BoundsUntrustedTemplates) {
  EXPECT_THROW(eval::jinja::Template::parse("{{ " + std::string(200, '(') + "1" + std::string(200, ')') + " }}", "t"),
               ConfigError);
  std::string deep_ifs;  // 100 nested blocks, over the limit of 64
  for (int i = 0; i < 100; ++i) deep_ifs += "{% if x %}";
  EXPECT_THROW(eval::jinja::Template::parse(deep_ifs, "t"), ConfigError);
  EXPECT_THROW(eval::jinja::render("{{ range(100000000)|length }}", Json::object(), "t"), ConfigError);
  EXPECT_THROW(eval::jinja::render("{{ 'x' * 100000000 }}", Json::object(), "t"), ConfigError);
  EXPECT_THROW(eval::jinja::render("{{ 9223372036854775807 + 1 }}", Json::object(), "t"), ConfigError);
}

TEST(PyValue, LiteralEvalAndRepr) {
  using eval::py::literal_eval;
  EXPECT_EQ(literal_eval("['a', \"b\\n\", 3, -2.5, True, None]"),
            Json::parse("[\"a\", \"b\\n\", 3, -2.5, true, null]"));
  EXPECT_EQ(literal_eval("('x',)"), Json::parse("[\"x\"]"));
  EXPECT_EQ(literal_eval("{'k': [1, 2]}"), Json::parse("{\"k\": [1, 2]}"));
  EXPECT_EQ(literal_eval("'\\u00e9\\x41'"), Json("\u00e9A"));
  for (const char* bad : {"[1, 2", "x", "1 +", "'open", "[1,,2]", "__import__('os')"}) {
    EXPECT_THROW(literal_eval(bad), eval::py::PyError) << bad;
  }
  // repr picks Python's quotes and round-trips through literal_eval.
  for (const char* s : {"it's", "say \"hi\"", "both ' and \"", "tab\tnl\n\\", "caf\u00e9\u0085"}) {
    EXPECT_EQ(literal_eval(eval::py::repr(Json(s))), Json(s)) << s;
  }
  EXPECT_EQ(eval::py::repr(Json("it's")), "\"it's\"");
  EXPECT_EQ(eval::py::float_repr(1e16), "1e+16");
  EXPECT_EQ(eval::py::float_repr(0.0001), "0.0001");
  EXPECT_EQ(eval::py::float_repr(1e-05), "1e-05");
  EXPECT_EQ(eval::py::float_repr(2.0), "2.0");
  EXPECT_EQ(eval::py::float_repr(123456789.125), "123456789.125");
}

// Python's str.strip() removes every str.isspace() code point, e.g. U+0085, which ends one MMLU
// sociology question (a decision flip against lm-eval before this was Unicode-aware).
TEST(PyValue, StripIsUnicodeAware) {
  using eval::py::strip;
  EXPECT_EQ(strip("Which of these?\u0085"), "Which of these?");
  EXPECT_EQ(strip("\u0085\u00a0 Why?\u3000\u2029\x1f"), "Why?");
  EXPECT_EQ(strip("\u200bx\ufeff"), "\u200bx\ufeff");  // not whitespace
  EXPECT_EQ(strip(std::string("\x85" "a" "\xa0")), std::string("\x85" "a" "\xa0"));  // not UTF-8
}

TEST(PyRe, SubAndSplitFollowPython) {
  using eval::py::re_split;
  using eval::py::re_sub;
  // re.sub('x*', '-', 'abxd') == '-a-b--d-' (Python 3.7+ empty-match rule).
  EXPECT_EQ(re_sub("x*", "-", "abxd"), "-a-b--d-");
  EXPECT_EQ(re_sub("(\\w+) (\\w+)", "\\2 \\1", "hello world"), "world hello");
  EXPECT_EQ(re_sub("(?P<a>b)", "[\\g<a>]", "abc"), "a[b]c");
  EXPECT_EQ(re_sub("a", "b", "aaa", 2), "bba");
  EXPECT_THROW(re_sub("(", "", "x"), eval::py::PyError);
  EXPECT_THROW(re_sub("a", "\\3", "a"), eval::py::PyError);
  // len(re.split(r"\s+", " a  b\n")) == 4: ['', 'a', 'b', ''].
  EXPECT_EQ(re_split("\\s+", " a  b\n").size(), 4u);
  EXPECT_EQ(re_split("\\s+", "a\u00a0b").size(), 2u);  // Unicode whitespace, as Python's str patterns
}
