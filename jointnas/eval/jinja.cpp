// Evaluation of the Jinja subset (jinja.h): values, undefined (StrictUndefined), filters, tests,
// str / list / dict methods. Filter and test behaviour follows jinja2 3.1 filters.py / tests.py.
#include "jointnas/eval/jinja.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "jointnas/eval/jinja_ast.h"
#include "jointnas/eval/pyre.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval::jinja {
namespace {

using py::PyError;

constexpr size_t kMaxOutputBytes = size_t{64} << 20;  // one rendered prompt; far above any task
constexpr int64_t kMaxRange = 1 << 20;                 // range() / repetition sizes

// A value, an undefined name (StrictUndefined: an error when used), or a bound method / global.
struct Val {
  enum Kind { kValue, kUndefined, kMethod, kFunction } kind = kValue;
  Json v;            // the value; for kMethod the object the method is bound to
  std::string name;  // undefined: what was looked up; method / function name
};

Val value(Json j) { return {Val::kValue, std::move(j), ""}; }
Val undefined(std::string what) { return {Val::kUndefined, nullptr, std::move(what)}; }

[[noreturn]] void fail(const std::string& msg) { throw PyError(msg); }

const Json& need(const Val& v) {
  if (v.kind == Val::kUndefined) fail(fmt::format("UndefinedError: {} is undefined", v.name));
  if (v.kind != Val::kValue) fail(fmt::format("TypeError: {} is a method, call it with ()", v.name));
  return v.v;
}

int64_t need_int(const Json& v, const char* what) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (!v.is_number_integer()) fail(fmt::format("TypeError: {} must be int, not {}", what, py::type_name(v)));
  return v.get<int64_t>();
}

const std::string& need_str(const Json& v, const char* what) {
  if (!v.is_string()) fail(fmt::format("TypeError: {} must be str, not {}", what, py::type_name(v)));
  return v.get_ref<const std::string&>();
}

double as_double(const Json& v) { return v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>(); }
bool is_num(const Json& v) { return v.is_number() || v.is_boolean(); }

// Items of an iterable as Python iterates them: list items, str characters, dict keys.
std::vector<Json> iterate(const Json& v) {
  std::vector<Json> out;
  if (v.is_array()) {
    out.assign(v.begin(), v.end());
  } else if (v.is_string()) {
    const auto cps = py::code_points(v.get_ref<const std::string&>());
    for (size_t i = 0; i < cps.size(); ++i) out.emplace_back(py::from_code_points(cps, i, i + 1));
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.items()) out.emplace_back(k);
  } else {
    fail(fmt::format("TypeError: '{}' object is not iterable", py::type_name(v)));
  }
  return out;
}

Json checked_int(long double x) {
  if (!(x >= -9.2e18L && x <= 9.2e18L)) fail("OverflowError: integer result beyond 64 bits");
  return static_cast<int64_t>(x);
}

Json arithmetic(const std::string& op, const Json& a, const Json& b) {
  if (op == "~") return py::str(a) + py::str(b);
  if (op == "+" && a.is_string() && b.is_string()) return a.get<std::string>() + b.get<std::string>();
  if (op == "+" && a.is_array() && b.is_array()) {
    Json out = a;
    for (const auto& x : b) out.push_back(x);
    return out;
  }
  if (op == "*" && (a.is_string() || a.is_array()) && (b.is_number_integer() || b.is_boolean())) {
    const int64_t n = need_int(b, "repeat count");
    if (n > 0 && static_cast<int64_t>(a.is_string() ? a.get_ref<const std::string&>().size() : a.size()) * n > kMaxRange) {
      fail("MemoryError: repetition too large");
    }
    Json out = a.is_string() ? Json(std::string()) : Json::array();
    for (int64_t i = 0; i < n; ++i) {
      if (a.is_string()) out = out.get<std::string>() + a.get<std::string>();
      else for (const auto& x : a) out.push_back(x);
    }
    return out;
  }
  if (!is_num(a) || !is_num(b)) {
    fail(fmt::format("TypeError: unsupported operand type(s) for {}: '{}' and '{}'", op,
                     py::type_name(a), py::type_name(b)));
  }
  const bool ints = !a.is_number_float() && !b.is_number_float();
  if (ints && op != "/" && !(op == "**" && need_int(b, "") < 0)) {
    const long double x = static_cast<long double>(need_int(a, "")), y = static_cast<long double>(need_int(b, ""));
    if (op == "+") return checked_int(x + y);
    if (op == "-") return checked_int(x - y);
    if (op == "*") return checked_int(x * y);
    if (op == "**") return checked_int(std::pow(x, y));
    if (y == 0) fail("ZeroDivisionError: integer division or modulo by zero");
    const int64_t xi = need_int(a, ""), yi = need_int(b, "");
    int64_t q = xi / yi, r = xi % yi;
    if (r != 0 && ((r < 0) != (yi < 0))) {  // Python floors
      --q;
      r += yi;
    }
    return op == "//" ? Json(q) : Json(r);
  }
  const double x = as_double(a), y = as_double(b);
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if (op == "**") return std::pow(x, y);
  if (y == 0) fail("ZeroDivisionError: float division by zero");
  if (op == "/") return x / y;
  if (op == "//") return std::floor(x / y);
  double m = std::fmod(x, y);
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return m;
}

bool contains(const Json& container, const Json& item) {
  if (container.is_string()) {
    return need_str(item, "'in <string>' left operand").empty() ||
           container.get_ref<const std::string&>().find(item.get<std::string>()) != std::string::npos;
  }
  if (container.is_object()) return item.is_string() && container.contains(item.get<std::string>());
  if (container.is_array()) {
    for (const auto& x : container) {
      if (py::equal(x, item)) return true;
    }
    return false;
  }
  fail(fmt::format("TypeError: argument of type '{}' is not iterable", py::type_name(container)));
}

bool compare_op(const std::string& op, const Json& a, const Json& b) {
  if (op == "==") return py::equal(a, b);
  if (op == "!=") return !py::equal(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  const int c = py::compare(a, b);
  return op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
}

const std::set<std::string> kStrMethods = {
    "strip", "lstrip", "rstrip", "split", "lower", "upper", "capitalize", "title", "replace",
    "startswith", "endswith", "index", "find", "rfind", "count", "join", "isdigit", "isalpha",
    "isspace", "isupper", "islower"};
const std::set<std::string> kListMethods = {"index", "count"};
const std::set<std::string> kDictMethods = {"keys", "values", "items", "get"};

const std::set<std::string> kFilters = {
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last",
    "length", "list", "lower", "map", "max", "min", "regex_replace", "replace", "reverse",
    "round", "string", "sum", "title", "trim", "upper", "wordcount"};
const std::set<std::string> kTests = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
    "sequence", "iterable", "true", "false", "boolean", "even", "odd", "divisibleby", "lower",
    "upper", "in", "eq", "ne", "equalto", "lt", "gt", "le", "ge"};

// Positional or keyword argument `i` / `key` of a call, or nullopt.
struct Args {
  std::vector<Json> pos;
  std::map<std::string, Json> kw;
  std::optional<Json> get(size_t i, const char* key) const {
    if (i < pos.size()) return pos[i];
    if (auto it = kw.find(key); it != kw.end()) return it->second;
    return std::nullopt;
  }
};

int64_t find_in(const std::string& s, const std::string& sub, bool reverse) {
  const size_t at = reverse ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) return -1;
  return py::length(s.substr(0, at));  // code point index
}

Json call_method(const Json& self, const std::string& name, const Args& a) {
  if (self.is_string()) {
    const std::string& s = self.get_ref<const std::string&>();
    auto opt_str = [&](size_t i, const char* key) -> std::optional<std::string> {
      auto v = a.get(i, key);
      if (!v || v->is_null()) return std::nullopt;
      return need_str(*v, key);
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      return py::strip(s, opt_str(0, "chars"), name != "rstrip", name != "lstrip");
    }
    if (name == "split") {
      auto m = a.get(1, "maxsplit");
      return py::split(s, opt_str(0, "sep"), m ? need_int(*m, "maxsplit") : -1);
    }
    if (name == "lower") return py::lower(s);
    if (name == "upper") return py::upper(s);
    if (name == "capitalize") return py::capitalize(s);
    if (name == "title") return py::title(s);
    if (name == "isdigit") return py::is_digit_string(s);
    if (name == "isalpha" || name == "isspace" || name == "isupper" || name == "islower") {
      const auto cps = py::code_points(s);
      if (cps.empty()) return false;
      if (name == "isspace") return std::all_of(cps.begin(), cps.end(), py::is_space);
      if (name == "isalpha") return py::lower(s) != py::upper(s) && std::all_of(cps.begin(), cps.end(), [](uint32_t c) {
               const std::string one = py::from_code_points({c}, 0, 1);
               return py::lower(one) != py::upper(one);
             });
      return name == "isupper" ? py::upper(s) == s && py::lower(s) != s : py::lower(s) == s && py::upper(s) != s;
    }
    if (name == "replace") {
      if (a.pos.size() < 2) fail("TypeError: replace() takes at least 2 arguments");
      auto c = a.get(2, "count");
      return py::replace(s, need_str(a.pos[0], "old"), need_str(a.pos[1], "new"), c ? need_int(*c, "count") : -1);
    }
    if (name == "startswith" || name == "endswith") {
      if (a.pos.empty()) fail(fmt::format("TypeError: {}() takes at least 1 argument", name));
      std::vector<Json> options = a.pos[0].is_array() ? iterate(a.pos[0]) : std::vector<Json>{a.pos[0]};
      for (const auto& o : options) {
        const std::string& p = need_str(o, name.c_str());
        if (p.size() <= s.size() && (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                                          : s.compare(s.size() - p.size(), p.size(), p) == 0)) {
          return true;
        }
      }
      return false;
    }
    if (name == "index" || name == "find" || name == "rfind" || name == "count") {
      if (a.pos.empty()) fail(fmt::format("TypeError: {}() takes at least 1 argument", name));
      const std::string& sub = need_str(a.pos[0], "substring");
      if (name == "count") {
        if (sub.empty()) return py::length(s) + 1;
        int64_t n = 0;
        for (size_t i = s.find(sub); i != std::string::npos; i = s.find(sub, i + sub.size())) ++n;
        return n;
      }
      const int64_t at = find_in(s, sub, name == "rfind");
      if (at < 0 && name == "index") fail("ValueError: substring not found");
      return at;
    }
    if (name == "join") {
      if (a.pos.empty()) fail("TypeError: join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(a.pos[0])) {
        out += (first ? "" : s) + need_str(x, "sequence item");
        first = false;
      }
      return out;
    }
  } else if (self.is_array()) {
    if (a.pos.empty()) fail(fmt::format("TypeError: {}() takes at least 1 argument", name));
    int64_t n = 0;
    for (size_t i = 0; i < self.size(); ++i) {
      if (py::equal(self[i], a.pos[0])) {
        if (name == "index") return static_cast<int64_t>(i);
        ++n;
      }
    }
    if (name == "index") fail(fmt::format("ValueError: {} is not in list", py::repr(a.pos[0])));
    return n;
  } else if (self.is_object()) {
    Json out = Json::array();
    if (name == "get") {
      if (a.pos.empty()) fail("TypeError: get() takes at least 1 argument");
      const std::string k = a.pos[0].is_string() ? a.pos[0].get<std::string>() : py::str(a.pos[0]);
      if (self.contains(k)) return self[k];
      return a.pos.size() > 1 ? a.pos[1] : Json(nullptr);
    }
    for (const auto& [k, x] : self.items()) {
      if (name == "keys") out.push_back(k);
      else if (name == "values") out.push_back(x);
      else out.push_back(Json::array({k, x}));
    }
    return out;
  }
  fail(fmt::format("AttributeError: '{}' object has no attribute '{}'", py::type_name(self), name));
}

// jinja2 do_int / do_float: on failure the default (0 / 0.0), strings through float first.
Json to_int(const Json& v, const Args& a) {
  const Json dflt = a.get(0, "default").value_or(Json(0));
  if (v.is_number_integer()) return v;
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number_float()) return std::isfinite(v.get<double>()) ? checked_int(std::trunc(v.get<double>())) : dflt;
  if (v.is_string()) {
    const std::string t = py::strip(v.get<std::string>());
    try {
      Json x = py::literal_eval(t);
      if (x.is_number_integer() && !t.empty() && t[0] != '+') return x;
      if (x.is_number()) return checked_int(std::trunc(as_double(x)));
    } catch (const Error&) {
    }
  }
  return dflt;
}

Json to_float(const Json& v, const Args& a) {
  const Json dflt = a.get(0, "default").value_or(Json(0.0));
  if (is_num(v)) return as_double(v);
  if (v.is_string()) {
    try {
      Json x = py::literal_eval(py::strip(v.get<std::string>()));
      if (x.is_number()) return as_double(x);
    } catch (const Error&) {
    }
  }
  return dflt;
}

class Renderer {
 public:
  explicit Renderer(const Json& vars) : vars_(vars) {}

  void run(const Node& n, std::string& out) {
    switch (n.kind) {
      case NodeKind::kText: out += n.text; break;
      case NodeKind::kOutput: out += py::str(need(eval(*n.expr))); break;
      case NodeKind::kBody:
        for (const auto& c : n.children) run(*c, out);
        break;
      case NodeKind::kSet: scopes_.back()[n.targets[0]] = need(eval(*n.expr)); break;
      case NodeKind::kIf: {
        for (const auto& [cond, body] : n.branches) {
          if (py::truthy(need(eval(*cond)))) {
            run(*body, out);
            return;
          }
        }
        if (n.else_body) run(*n.else_body, out);
        break;
      }
      case NodeKind::kFor: run_for(n, out); break;
    }
    if (out.size() > kMaxOutputBytes) fail("MemoryError: rendered text over 64 MiB");
  }

 private:
  void run_for(const Node& n, std::string& out) {
    std::vector<Json> items = iterate(need(eval(*n.expr)));
    scopes_.emplace_back();
    auto bind = [&](const Json& item) {
      if (n.targets.size() == 1) {
        scopes_.back()[n.targets[0]] = item;
        return;
      }
      const std::vector<Json> parts = iterate(item);
      if (parts.size() != n.targets.size()) fail("ValueError: wrong number of values to unpack");
      for (size_t k = 0; k < parts.size(); ++k) scopes_.back()[n.targets[k]] = parts[k];
    };
    if (n.filter) {  // "for x in xs if cond": the loop sees only the kept items
      std::vector<Json> kept;
      for (const auto& item : items) {
        bind(item);
        if (py::truthy(need(eval(*n.filter)))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      bind(items[static_cast<size_t>(i)]);
      scopes_.back()["loop"] = Json{{"index", i + 1}, {"index0", i}, {"first", i == 0},
                                    {"last", i == len - 1}, {"length", len},
                                    {"revindex", len - i}, {"revindex0", len - i - 1}};
      run(*n.body, out);
    }
    if (items.empty() && n.else_body) run(*n.else_body, out);
    scopes_.pop_back();
  }

  Val lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      if (auto f = it->find(name); f != it->end()) return value(f->second);
    }
    if (vars_.is_object() && vars_.contains(name)) return value(vars_[name]);
    if (name == "range") return {Val::kFunction, nullptr, "range"};
    return undefined("'" + name + "'");
  }

  Args args_of(const Expr& e, size_t first) {
    Args a;
    for (size_t i = first; i < e.items.size(); ++i) a.pos.push_back(need(eval(*e.items[i])));
    for (const auto& [k, x] : e.kwargs) a.kw[k] = need(eval(*x));
    return a;
  }

  Val attr(const Json& obj, const std::string& name) {
    if (obj.is_object()) {
      if (kDictMethods.count(name)) return {Val::kMethod, obj, name};
      if (obj.contains(name)) return value(obj[name]);
    } else if ((obj.is_string() && kStrMethods.count(name)) || (obj.is_array() && kListMethods.count(name))) {
      return {Val::kMethod, obj, name};
    }
    return undefined(fmt::format("'{}' object has no attribute '{}': it", py::type_name(obj), name));
  }

  Val eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral: return value(e.value);
      case ExprKind::kName: return lookup(e.name);
      case ExprKind::kList: {
        Json out = Json::array();
        for (const auto& x : e.items) out.push_back(need(eval(*x)));
        return value(out);
      }
      case ExprKind::kDict: {
        Json out = Json::object();
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Json k = need(eval(*e.items[i]));
          out[k.is_string() ? k.get<std::string>() : py::str(k)] = need(eval(*e.items[i + 1]));
        }
        return value(out);
      }
      case ExprKind::kAttr: return attr(need(eval(*e.items[0])), e.name);
      case ExprKind::kItem: {
        const Json obj = need(eval(*e.items[0]));
        const Json key = need(eval(*e.items[1]));
        try {
          return value(py::subscript(obj, key));
        } catch (const PyError&) {
          if (key.is_string()) return attr(obj, key.get<std::string>());
          return undefined(fmt::format("{} object has no element {}: it", py::type_name(obj), py::repr(key)));
        }
      }
      case ExprKind::kSlice: {
        const Json obj = need(eval(*e.items[0]));
        std::optional<int64_t> b[3];
        for (int k = 0; k < 3; ++k) {
          if (e.items[1 + k]) {
            const Json x = need(eval(*e.items[1 + k]));
            if (!x.is_null()) b[k] = need_int(x, "slice index");
          }
        }
        return value(py::slice(obj, b[0], b[1], b[2]));
      }
      case ExprKind::kCall: return call(e);
      case ExprKind::kFilter: return value(filter(e));
      case ExprKind::kTest: return value(test(e) != e.negate);
      case ExprKind::kUnary: {
        const Json x = need(eval(*e.items[0]));
        if (e.name == "not") return value(!py::truthy(x));
        if (!is_num(x)) fail(fmt::format("TypeError: bad operand type for unary {}: '{}'", e.name, py::type_name(x)));
        if (e.name == "+") return value(x.is_boolean() ? Json(need_int(x, "")) : x);
        return value(x.is_number_float() ? Json(-x.get<double>()) : checked_int(-static_cast<long double>(need_int(x, ""))));
      }
      case ExprKind::kBinary: {
        if (e.name == "and" || e.name == "or") {
          Val a = eval(*e.items[0]);
          const bool t = py::truthy(need(a));
          return (e.name == "and") == t ? eval(*e.items[1]) : a;
        }
        return value(arithmetic(e.name, need(eval(*e.items[0])), need(eval(*e.items[1]))));
      }
      case ExprKind::kCompare: {
        Json left = need(eval(*e.items[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Json right = need(eval(*e.items[i + 1]));
          if (!compare_op(e.ops[i], left, right)) return value(false);
          left = std::move(right);
        }
        return value(true);
      }
      case ExprKind::kCondition: {
        if (py::truthy(need(eval(*e.items[0])))) return eval(*e.items[1]);
        if (e.items[2]) return eval(*e.items[2]);
        return undefined("the value of an 'if' expression without 'else'");
      }
    }
    fail("internal: unknown expression");
  }

  Val call(const Expr& e) {
    Val callee = eval(*e.items[0]);
    const Args a = args_of(e, 1);
    if (callee.kind == Val::kMethod) return value(call_method(callee.v, callee.name, a));
    if (callee.kind == Val::kFunction && callee.name == "range") {
      if (a.pos.empty() || a.pos.size() > 3) fail("TypeError: range expected 1 to 3 arguments");
      int64_t start = 0, stop = 0, step = 1;
      if (a.pos.size() == 1) {
        stop = need_int(a.pos[0], "range()");
      } else {
        start = need_int(a.pos[0], "range()");
        stop = need_int(a.pos[1], "range()");
        if (a.pos.size() == 3) step = need_int(a.pos[2], "range()");
      }
      if (step == 0) fail("ValueError: range() arg 3 must not be zero");
      Json out = Json::array();
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (static_cast<int64_t>(out.size()) >= kMaxRange) fail("MemoryError: range() too long");
        out.push_back(i);
      }
      return value(out);
    }
    if (callee.kind == Val::kUndefined) need(callee);
    fail(fmt::format("TypeError: '{}' object is not callable", py::type_name(callee.v)));
  }

  Json filter(const Expr& e) {
    const std::string& f = e.name;
    Val in = eval(*e.items[0]);
    const Args a = args_of(e, 1);
    if (f == "default" || f == "d") {
      const bool boolean = a.get(1, "boolean").has_value() && py::truthy(*a.get(1, "boolean"));
      if (in.kind == Val::kUndefined || (boolean && !py::truthy(need(in)))) {
        return a.get(0, "default_value").value_or(Json(""));
      }
      return need(in);
    }
    const Json& v = need(in);
    if (f == "length" || f == "count") {
      if (v.is_string()) return py::length(v.get<std::string>());
      if (v.is_array() || v.is_object()) return static_cast<int64_t>(v.size());
      fail(fmt::format("TypeError: object of type '{}' has no len()", py::type_name(v)));
    }
    if (f == "string") return py::str(v);
    if (f == "int") return to_int(v, a);
    if (f == "float") return to_float(v, a);
    if (f == "lower") return py::lower(py::str(v));
    if (f == "upper") return py::upper(py::str(v));
    if (f == "capitalize") return py::capitalize(py::str(v));
    if (f == "title") return py::title(py::str(v));
    if (f == "trim") {
      auto chars = a.get(0, "chars");
      return py::strip(py::str(v), chars && !chars->is_null() ? std::optional<std::string>(need_str(*chars, "chars")) : std::nullopt);
    }
    if (f == "replace") {
      if (a.pos.size() < 2) fail("TypeError: replace filter needs old and new");
      auto c = a.get(2, "count");
      return py::replace(py::str(v), py::str(a.pos[0]), py::str(a.pos[1]),
                         c && !c->is_null() ? need_int(*c, "count") : -1);
    }
    if (f == "regex_replace") {  // lm-eval utils.regex_replace: re.sub(pattern, repl, s, count)
      if (a.pos.size() < 2) fail("TypeError: regex_replace needs pattern and repl");
      auto c = a.get(2, "count");
      return py::re_sub(need_str(a.pos[0], "pattern"), need_str(a.pos[1], "repl"),
                        need_str(v, "regex_replace input"), c ? need_int(*c, "count") : 0);
    }
    if (f == "join") {
      const std::string sep = a.get(0, "d").has_value() ? py::str(*a.get(0, "d")) : "";
      const auto attr_name = a.get(1, "attribute");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(v)) {
        out += (first ? "" : sep) + py::str(attr_name ? need(attr(x, py::str(*attr_name))) : x);
        first = false;
      }
      return out;
    }
    if (f == "list") return Json(iterate(v));
    if (f == "first" || f == "last") {
      const auto items = iterate(v);
      if (items.empty()) fail(fmt::format("UndefinedError: {} of an empty sequence is undefined", f));
      return f == "first" ? items.front() : items.back();
    }
    if (f == "reverse") {
      if (v.is_string()) return py::slice(v, std::nullopt, std::nullopt, -1);
      auto items = iterate(v);
      std::reverse(items.begin(), items.end());
      return Json(items);
    }
    if (f == "map") {
      Json out = Json::array();
      const auto attr_name = a.get(99, "attribute");
      for (const auto& x : iterate(v)) {
        if (attr_name) {
          out.push_back(need(attr(x, py::str(*attr_name))));
        } else {
          if (a.pos.empty()) fail("TypeError: map needs a filter name or attribute=");
          auto sub = std::make_shared<Expr>();
          sub->kind = ExprKind::kFilter;
          sub->name = need_str(a.pos[0], "map filter");
          if (!kFilters.count(sub->name) || sub->name == "map") fail(fmt::format("TemplateRuntimeError: no filter named '{}'", sub->name));
          auto lit = std::make_shared<Expr>();
          lit->kind = ExprKind::kLiteral;
          lit->value = x;
          sub->items.push_back(lit);
          for (size_t k = 1; k < a.pos.size(); ++k) {
            auto arg = std::make_shared<Expr>();
            arg->kind = ExprKind::kLiteral;
            arg->value = a.pos[k];
            sub->items.push_back(arg);
          }
          out.push_back(filter(*sub));
        }
      }
      return out;
    }
    if (f == "sum" || f == "min" || f == "max") {
      const auto items = iterate(v);
      if (f == "sum") {
        Json acc = a.get(1, "start").value_or(Json(0));
        for (const auto& x : items) acc = arithmetic("+", acc, x);
        return acc;
      }
      if (items.empty()) fail(fmt::format("UndefinedError: {} of an empty sequence", f));
      Json best = items[0];
      for (const auto& x : items) {
        if (f == "min" ? py::compare(x, best) < 0 : py::compare(x, best) > 0) best = x;
      }
      return best;
    }
    if (f == "abs") {
      if (!is_num(v)) fail(fmt::format("TypeError: bad operand type for abs(): '{}'", py::type_name(v)));
      return v.is_number_float() ? Json(std::fabs(v.get<double>())) : Json(std::llabs(need_int(v, "")));
    }
    if (f == "round") {
      const int64_t prec = a.get(0, "precision") ? need_int(*a.get(0, "precision"), "precision") : 0;
      const double p = std::pow(10.0, static_cast<double>(prec));
      return std::nearbyint(as_double(v) * p) / p;  // Python round: half to even
    }
    if (f == "wordcount") return static_cast<int64_t>(py::split(py::str(v), std::nullopt).size());
    fail(fmt::format("TemplateRuntimeError: no filter named '{}'", f));
  }

  bool test(const Expr& e) {
    const std::string& t = e.name;
    Val in = eval(*e.items[0]);
    if (t == "defined") return in.kind != Val::kUndefined;
    if (t == "undefined") return in.kind == Val::kUndefined;
    const Json& v = need(in);
    const Args a = args_of(e, 1);
    if (t == "none") return v.is_null();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number() || v.is_boolean();
    if (t == "integer") return v.is_number_integer();
    if (t == "float") return v.is_number_float();
    if (t == "boolean") return v.is_boolean();
    if (t == "true") return v.is_boolean() && v.get<bool>();
    if (t == "false") return v.is_boolean() && !v.get<bool>();
    if (t == "mapping") return v.is_object();
    if (t == "sequence" || t == "iterable") return v.is_array() || v.is_string() || v.is_object();
    if (t == "lower") return py::lower(py::str(v)) == py::str(v);
    if (t == "upper") return py::upper(py::str(v)) == py::str(v);
    if (t == "even" || t == "odd") return (need_int(v, "value") % 2 == 0) == (t == "even");
    if (a.pos.empty()) fail(fmt::format("TypeError: test '{}' needs an argument", t));
    if (t == "divisibleby") {
      const int64_t d = need_int(a.pos[0], "divisor");
      if (d == 0) fail("ZeroDivisionError: integer division or modulo by zero");
      return need_int(v, "value") % d == 0;
    }
    if (t == "in") return contains(a.pos[0], v);
    static const std::map<std::string, std::string> kOps = {{"eq", "=="}, {"equalto", "=="}, {"ne", "!="},
                                                            {"lt", "<"},  {"gt", ">"},       {"le", "<="},
                                                            {"ge", ">="}};
    auto it = kOps.find(t);
    if (it == kOps.end()) fail(fmt::format("TemplateRuntimeError: no test named '{}'", t));
    return compare_op(it->second, v, a.pos[0]);
  }

  const Json& vars_;
  std::vector<std::map<std::string, Json>> scopes_ = {{}};
};

// Unknown filters and tests are syntax errors in jinja2 (at compile time): check them at parse.
void check_names(const Expr* e, const std::string& where) {
  if (e == nullptr) return;
  if (e->kind == ExprKind::kFilter && !kFilters.count(e->name)) {
    throw ConfigError(fmt::format("{}: template error: no filter named '{}' (supported: {})", where,
                                  e->name, fmt::join(kFilters, ", ")));
  }
  if (e->kind == ExprKind::kTest && !kTests.count(e->name)) {
    throw ConfigError(fmt::format("{}: template error: no test named '{}' (supported: {})", where,
                                  e->name, fmt::join(kTests, ", ")));
  }
  for (const auto& x : e->items) check_names(x.get(), where);
  for (const auto& kv : e->kwargs) check_names(kv.second.get(), where);
}

void check_names(const Node* n, const std::string& where) {
  if (n == nullptr) return;
  check_names(n->expr.get(), where);
  check_names(n->filter.get(), where);
  for (const auto& [c, b] : n->branches) {
    check_names(c.get(), where);
    check_names(b.get(), where);
  }
  check_names(n->body.get(), where);
  check_names(n->else_body.get(), where);
  for (const auto& c : n->children) check_names(c.get(), where);
}

}  // namespace

Template Template::parse(const std::string& source, const std::string& where) {
  Template t;
  t.root_ = parse_template(source, where);
  check_names(t.root_.get(), where);
  t.source_ = source;
  t.where_ = where;
  return t;
}

std::string Template::render(const Json& vars, const std::string& doc) const {
  std::string out;
  try {
    Renderer(vars).run(*root_, out);
  } catch (const PyError& e) {
    const std::string src = source_.size() > 200 ? source_.substr(0, 200) + "..." : source_;
    throw ConfigError(fmt::format("{}: {} (template {}{})", where_, e.what(), py::repr(Json(src)),
                                  doc.empty() ? "" : ", document " + doc));
  }
  return out;
}

std::string render(const std::string& source, const Json& vars, const std::string& where) {
  return Template::parse(source, where).render(vars);
}

}  // namespace jointnas::eval::jinja
