// Lexer and parser of the Jinja subset in jinja.h. Precedence follows jinja2/parser.py:
// condition < or < and < not < compare < + - < ~ < * / // % < ** < unary < postfix / filter / test.
#include <algorithm>
#include <cstring>

#include "jointnas/core/error.h"
#include "jointnas/eval/jinja_ast.h"
#include "jointnas/eval/pyvalue.h"

namespace jointnas::eval::jinja {
namespace {

constexpr size_t kMaxDepth = 64;  // nesting of expressions and blocks (untrusted templates)

struct Token {
  enum Type { kName, kString, kNumber, kOp, kEnd } type;
  std::string text;
  Json value;  // kString, kNumber
  size_t pos = 0;
};

// One piece of the template: text, {{ output }} or {% statement %}.
struct Piece {
  enum Type { kText, kOutput, kStmt } type;
  std::string text;
  std::vector<Token> tokens;
  size_t pos = 0;
};

class Lexer {
 public:
  Lexer(const std::string& src, const std::string& where) : s_(src), where_(where) {}

  std::vector<Piece> run() {
    std::vector<Piece> out;
    bool strip_next = false;  // the previous tag ended in "-": strip leading whitespace
    size_t i = 0;
    while (i <= s_.size()) {
      size_t open = s_.size();
      for (const char* o : {"{{", "{%", "{#"}) open = std::min(open, s_.find(o, i));
      std::string text = s_.substr(i, open - i);
      const bool strip_prev = open + 2 < s_.size() && s_[open + 2] == '-';
      if (strip_next) text = py::strip(text, std::nullopt, true, false);
      if (strip_prev && open < s_.size()) text = py::strip(text, std::nullopt, false, true);
      if (!text.empty()) out.push_back({Piece::kText, normalize_newlines(text), {}, i});
      if (open >= s_.size()) break;
      const char kind = s_[open + 1];
      i = open + 2 + (strip_prev || (open + 2 < s_.size() && s_[open + 2] == '+') ? 1 : 0);
      if (kind == '#') {
        const size_t close = s_.find("#}", i);
        if (close == std::string::npos) fail(open, "unclosed comment '{#'");
        strip_next = close > i && s_[close - 1] == '-';
        i = close + 2;
        continue;
      }
      Piece p{kind == '{' ? Piece::kOutput : Piece::kStmt, "", {}, open};
      p.tokens = tokens(&i, kind == '{' ? '}' : '%', &strip_next);
      out.push_back(std::move(p));
    }
    return out;
  }

  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    throw ConfigError(fmt::format("{}: template syntax error at offset {}: {} (template {})", where_,
                                  pos, what, py::repr(Json(s_.size() > 300 ? s_.substr(0, 300) + "..." : s_))));
  }

 private:
  static std::string normalize_newlines(const std::string& t) {
    if (t.find('\r') == std::string::npos) return t;
    std::string out;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] == '\r') {
        out += '\n';
        if (i + 1 < t.size() && t[i + 1] == '\n') ++i;
      } else {
        out += t[i];
      }
    }
    return out;
  }

  // Tokens up to the closing "}}" / "%}" (close_char is '}' or '%') at bracket depth 0.
  std::vector<Token> tokens(size_t* pos, char close_char, bool* strip_next) {
    std::vector<Token> out;
    size_t& i = *pos;
    int depth = 0;
    static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                 "<",  ">",  "=",  "(",  ")",  "[",  "]", "{", "}", ",", ".", ":", "|"};
    while (true) {
      while (i < s_.size() && std::strchr(" \t\n\r", s_[i]) != nullptr) ++i;
      if (i >= s_.size()) fail(i, close_char == '}' ? "unclosed '{{'" : "unclosed '{%'");
      const bool dash = s_[i] == '-' || s_[i] == '+';
      if (depth == 0 && s_.compare(i + (dash ? 1 : 0), 2, std::string(1, close_char) + "}") == 0) {
        *strip_next = dash && s_[i] == '-';
        i += 2 + (dash ? 1 : 0);
        out.push_back({Token::kEnd, "", {}, i});
        return out;
      }
      const char c = s_[i];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
        out.push_back({Token::kName, s_.substr(i, j - i), {}, i});
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t j = i;
        while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
        // A fraction only when a digit follows the dot ("x.0.1" stays attribute access).
        const bool after_dot = !out.empty() && out.back().type == Token::kOp && out.back().text == ".";
        if (!after_dot && j + 1 < s_.size() && s_[j] == '.' && std::isdigit(static_cast<unsigned char>(s_[j + 1]))) {
          ++j;
          while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
        }
        if (!after_dot && j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
          size_t k = j + 1;
          if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
          if (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) {
            j = k;
            while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]))) ++j;
          }
        }
        const std::string text = s_.substr(i, j - i);
        Json v;
        try {
          v = py::literal_eval(text);
        } catch (const Error&) {
          fail(i, "malformed number '" + text + "'");
        }
        out.push_back({Token::kNumber, text, v, i});
        i = j;
      } else if (c == '\'' || c == '"') {
        size_t j = i + 1;
        while (j < s_.size() && s_[j] != c) j += s_[j] == '\\' ? 2 : 1;
        if (j >= s_.size()) fail(i, "unterminated string");
        // Jinja decodes string literals with Python's unicode-escape; literal_eval does the same
        // for the escapes Python knows. Raw newlines are allowed inside, as in Jinja.
        std::string raw = normalize_newlines(s_.substr(i, j + 1 - i));
        std::string escaped;
        for (char ch : raw) escaped += ch == '\n' ? std::string("\\n") : std::string(1, ch);
        Json v;
        try {
          v = py::literal_eval(escaped);
        } catch (const Error& e) {
          fail(i, e.what());
        }
        out.push_back({Token::kString, raw, v, i});
        i = j + 1;
      } else {
        const char* op = nullptr;
        for (const char* o : kOps) {
          if (s_.compare(i, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        }
        if (op == nullptr) fail(i, fmt::format("unexpected character '{}'", c));
        if (std::strchr("([{", op[0]) && op[1] == 0) ++depth;
        if (std::strchr(")]}", op[0]) && op[1] == 0) {
          if (depth == 0) fail(i, fmt::format("unmatched '{}'", op));
          --depth;
        }
        out.push_back({Token::kOp, op, {}, i});
        i += std::strlen(op);
      }
    }
  }

  const std::string& s_;
  const std::string& where_;
};

ExprPtr make(ExprKind k, std::vector<ExprPtr> items = {}, std::string name = "") {
  auto e = std::make_shared<Expr>();
  e->kind = k;
  e->items = std::move(items);
  e->name = std::move(name);
  return e;
}

class ExprParser {
 public:
  ExprParser(const std::vector<Token>& t, const Lexer& lex) : t_(t), lex_(lex) {}

  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool at_op(const char* op) const { return peek().type == Token::kOp && peek().text == op; }
  bool at_name(const char* n) const { return peek().type == Token::kName && peek().text == n; }
  bool at_end() const { return peek().type == Token::kEnd; }
  const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  void expect_op(const char* op) {
    if (!at_op(op)) fail(fmt::format("expected '{}'", op));
    ++i_;
  }
  std::string expect_name() {
    if (peek().type != Token::kName) fail("expected a name");
    return next().text;
  }
  void expect_end() {
    if (!at_end()) fail(fmt::format("unexpected '{}'", peek().text));
  }
  [[noreturn]] void fail(const std::string& what) const { lex_.fail(peek().pos, what); }

  ExprPtr expression(bool with_condition = true) {
    guard();
    ExprPtr e = or_expr();
    if (with_condition && at_name("if")) {
      ++i_;
      ExprPtr cond = or_expr();
      ExprPtr other;
      if (at_name("else")) {
        ++i_;
        other = expression();
      }
      e = make(ExprKind::kCondition, {cond, e, other});
    }
    --depth_;
    return e;
  }

  // A tuple without parentheses ("a, b" in a for target or a set value) or one expression.
  ExprPtr tuple_or_expression() {
    ExprPtr first = expression();
    if (!at_op(",")) return first;
    std::vector<ExprPtr> items{first};
    while (at_op(",")) {
      ++i_;
      if (at_end() || at_name("in")) break;
      items.push_back(expression());
    }
    return make(ExprKind::kList, items);
  }

 private:
  void guard() {
    if (++depth_ > kMaxDepth) fail("expression nested too deeply");
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (at_name("or")) {
      ++i_;
      e = make(ExprKind::kBinary, {e, and_expr()}, "or");
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (at_name("and")) {
      ++i_;
      e = make(ExprKind::kBinary, {e, not_expr()}, "and");
    }
    return e;
  }
  ExprPtr not_expr() {
    if (at_name("not")) {
      ++i_;
      guard();
      ExprPtr e = make(ExprKind::kUnary, {not_expr()}, "not");
      --depth_;
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr first = math1();
    auto e = std::make_shared<Expr>();
    e->kind = ExprKind::kCompare;
    e->items.push_back(first);
    while (true) {
      std::string op;
      if (peek().type == Token::kOp && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                        peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (at_name("in")) {
        ++i_;
        op = "in";
      } else if (at_name("not") && peek(1).type == Token::kName && peek(1).text == "in") {
        i_ += 2;
        op = "not in";
      } else {
        break;
      }
      e->ops.push_back(op);
      e->items.push_back(math1());
    }
    return e->ops.empty() ? first : ExprPtr(e);
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (at_op("+") || at_op("-")) {
      const std::string op = next().text;
      e = make(ExprKind::kBinary, {e, concat()}, op);
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (at_op("~")) {
      ++i_;
      e = make(ExprKind::kBinary, {e, math2()}, "~");
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const std::string op = next().text;
      e = make(ExprKind::kBinary, {e, power()}, op);
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (at_op("**")) {
      ++i_;
      e = make(ExprKind::kBinary, {e, unary(true)}, "**");
    }
    return e;
  }
  ExprPtr unary(bool with_filter) {
    guard();
    ExprPtr e;
    if (at_op("-") || at_op("+")) {
      const std::string op = next().text;
      e = make(ExprKind::kUnary, {unary(false)}, op);
    } else {
      e = primary();
    }
    e = postfix(e);
    if (with_filter) e = filters(e);
    --depth_;
    return e;
  }
  ExprPtr primary() {
    const Token& t = peek();
    if (t.type == Token::kName) {
      ++i_;
      for (const auto& [word, val] : {std::pair<const char*, Json>{"true", true}, {"True", true},
                                      {"false", false}, {"False", false}, {"none", nullptr},
                                      {"None", nullptr}}) {
        if (t.text == word) {
          auto e = make(ExprKind::kLiteral);
          std::const_pointer_cast<Expr>(e)->value = val;
          return e;
        }
      }
      return make(ExprKind::kName, {}, t.text);
    }
    if (t.type == Token::kString || t.type == Token::kNumber) {
      auto e = std::make_shared<Expr>();
      e->kind = ExprKind::kLiteral;
      e->value = next().value;
      while (e->value.is_string() && peek().type == Token::kString) {  // "a" "b" concatenates
        e->value = e->value.get<std::string>() + next().value.get<std::string>();
      }
      return e;
    }
    if (at_op("(")) {
      ++i_;
      if (at_op(")")) {
        ++i_;
        return make(ExprKind::kList);
      }
      ExprPtr e = expression();
      if (at_op(",")) {
        std::vector<ExprPtr> items{e};
        while (at_op(",")) {
          ++i_;
          if (at_op(")")) break;
          items.push_back(expression());
        }
        e = make(ExprKind::kList, items);
      }
      expect_op(")");
      return e;
    }
    if (at_op("[")) {
      ++i_;
      std::vector<ExprPtr> items;
      while (!at_op("]")) {
        if (!items.empty()) expect_op(",");
        if (at_op("]")) break;
        items.push_back(expression());
      }
      ++i_;
      return make(ExprKind::kList, items);
    }
    if (at_op("{")) {
      ++i_;
      std::vector<ExprPtr> items;
      while (!at_op("}")) {
        if (!items.empty()) expect_op(",");
        if (at_op("}")) break;
        items.push_back(expression());
        expect_op(":");
        items.push_back(expression());
      }
      ++i_;
      return make(ExprKind::kDict, items);
    }
    fail(t.type == Token::kEnd ? "unexpected end of expression" : "unexpected '" + t.text + "'");
  }
  void call_args(Expr* e) {
    expect_op("(");
    bool first = true;
    while (!at_op(")")) {
      if (!first) {
        expect_op(",");
        if (at_op(")")) break;
      }
      first = false;
      if (peek().type == Token::kName && peek(1).type == Token::kOp && peek(1).text == "=") {
        const std::string key = next().text;
        ++i_;
        e->kwargs.emplace_back(key, expression());
      } else {
        if (!e->kwargs.empty()) fail("positional argument after a keyword argument");
        e->items.push_back(expression());
      }
    }
    ++i_;
  }
  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (at_op(".")) {
        ++i_;
        if (peek().type == Token::kNumber && peek().value.is_number_integer()) {
          auto lit = make(ExprKind::kLiteral);
          std::const_pointer_cast<Expr>(lit)->value = next().value;
          e = make(ExprKind::kItem, {e, lit});
        } else {
          e = make(ExprKind::kAttr, {e}, expect_name());
        }
      } else if (at_op("[")) {
        ++i_;
        std::vector<ExprPtr> parts(3);
        size_t k = 0;
        bool is_slice = false;
        while (!at_op("]")) {
          if (at_op(":")) {
            ++i_;
            is_slice = true;
            if (++k > 2) fail("too many ':' in a slice");
            continue;
          }
          if (parts[k]) fail("expected ':' or ']'");
          parts[k] = expression();
        }
        ++i_;
        if (!is_slice) {
          if (!parts[0]) fail("empty subscript");
          e = make(ExprKind::kItem, {e, parts[0]});
        } else {
          e = make(ExprKind::kSlice, {e, parts[0], parts[1], parts[2]});
        }
      } else if (at_op("(")) {
        auto c = std::make_shared<Expr>();
        c->kind = ExprKind::kCall;
        c->items.push_back(e);
        call_args(c.get());
        e = c;
      } else {
        return e;
      }
    }
  }
  ExprPtr filters(ExprPtr e) {
    while (true) {
      if (at_op("|")) {
        ++i_;
        auto f = std::make_shared<Expr>();
        f->kind = ExprKind::kFilter;
        f->name = expect_name();
        while (at_op(".")) {  // dotted filter names
          ++i_;
          f->name += '.';  // (not "." + name: GCC 12 warns a false -Wrestrict on that)
          f->name += expect_name();
        }
        f->items.push_back(e);
        if (at_op("(")) call_args(f.get());
        e = f;
      } else if (at_name("is")) {
        ++i_;
        auto t = std::make_shared<Expr>();
        t->kind = ExprKind::kTest;
        if (at_name("not")) {
          ++i_;
          t->negate = true;
        }
        t->name = expect_name();
        t->items.push_back(e);
        if (at_op("(")) {
          call_args(t.get());
        } else if (peek().type == Token::kNumber || peek().type == Token::kString) {
          t->items.push_back(primary());  // "is divisibleby 3"
        }
        e = t;
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  const Lexer& lex_;
  size_t i_ = 0;
  size_t depth_ = 0;
};

class BlockParser {
 public:
  BlockParser(const std::vector<Piece>& p, const Lexer& lex) : p_(p), lex_(lex) {}

  std::shared_ptr<const Node> parse() {
    std::string stop;
    auto body = block({}, &stop, 0);
    if (!stop.empty()) lex_.fail(p_[i_ - 1].pos, "unexpected '" + stop + "'");
    return body;
  }

 private:
  static std::string keyword(const Piece& p) {
    return !p.tokens.empty() && p.tokens[0].type == Token::kName ? p.tokens[0].text : "";
  }

  // Parses pieces into a body until a statement whose keyword is in `stops` (returned in *stop,
  // consumed); at the end of the template *stop is empty.
  std::shared_ptr<const Node> block(const std::vector<std::string>& stops, std::string* stop, size_t depth) {
    if (depth > kMaxDepth) lex_.fail(i_ < p_.size() ? p_[i_].pos : 0, "blocks nested too deeply");
    auto body = std::make_shared<Node>();
    body->kind = NodeKind::kBody;
    stop->clear();
    while (i_ < p_.size()) {
      const Piece& p = p_[i_++];
      if (p.type == Piece::kText) {
        auto n = std::make_shared<Node>();
        n->kind = NodeKind::kText;
        n->text = p.text;
        body->children.push_back(n);
        continue;
      }
      ExprParser ep(p.tokens, lex_);
      if (p.type == Piece::kOutput) {
        auto n = std::make_shared<Node>();
        n->kind = NodeKind::kOutput;
        n->expr = ep.expression();
        ep.expect_end();
        body->children.push_back(n);
        continue;
      }
      const std::string kw = keyword(p);
      if (std::find(stops.begin(), stops.end(), kw) != stops.end()) {
        *stop = kw;
        return body;
      }
      ep.next();
      if (kw == "if") {
        body->children.push_back(if_block(ep, depth));
      } else if (kw == "for") {
        body->children.push_back(for_block(ep, depth));
      } else if (kw == "set") {
        auto n = std::make_shared<Node>();
        n->kind = NodeKind::kSet;
        n->targets.push_back(ep.expect_name());
        if (!ep.at_op("=")) lex_.fail(p.pos, "only '{% set name = value %}' is supported");
        ep.next();
        n->expr = ep.tuple_or_expression();
        ep.expect_end();
        body->children.push_back(n);
      } else {
        lex_.fail(p.pos, kw.empty() ? "empty statement"
                                    : "unknown or misplaced statement '" + kw +
                                          "' (supported: if / elif / else / endif, for / endfor, set)");
      }
    }
    return body;
  }

  std::shared_ptr<const Node> if_block(ExprParser& ep, size_t depth) {
    auto n = std::make_shared<Node>();
    n->kind = NodeKind::kIf;
    ExprPtr cond = ep.expression();
    ep.expect_end();
    while (true) {
      std::string stop;
      auto body = block({"elif", "else", "endif"}, &stop, depth + 1);
      if (stop.empty()) lex_.fail(p_.back().pos, "missing '{% endif %}'");
      n->branches.emplace_back(cond, body);
      ExprParser sp(p_[i_ - 1].tokens, lex_);
      sp.next();
      if (stop == "elif") {
        cond = sp.expression();
        sp.expect_end();
        continue;
      }
      sp.expect_end();
      if (stop == "else") {
        n->else_body = block({"endif"}, &stop, depth + 1);
        if (stop.empty()) lex_.fail(p_.back().pos, "missing '{% endif %}'");
        ExprParser ep2(p_[i_ - 1].tokens, lex_);
        ep2.next();
        ep2.expect_end();
      }
      return n;
    }
  }

  std::shared_ptr<const Node> for_block(ExprParser& ep, size_t depth) {
    auto n = std::make_shared<Node>();
    n->kind = NodeKind::kFor;
    n->targets.push_back(ep.expect_name());
    while (ep.at_op(",")) {
      ep.next();
      n->targets.push_back(ep.expect_name());
    }
    if (!ep.at_name("in")) ep.fail("expected 'in'");
    ep.next();
    n->expr = ep.expression(/*with_condition=*/false);
    if (ep.at_name("if")) {
      ep.next();
      n->filter = ep.expression(false);
    }
    ep.expect_end();
    std::string stop;
    n->body = block({"else", "endfor"}, &stop, depth + 1);
    if (stop.empty()) lex_.fail(p_.back().pos, "missing '{% endfor %}'");
    if (stop == "else") {
      n->else_body = block({"endfor"}, &stop, depth + 1);
      if (stop.empty()) lex_.fail(p_.back().pos, "missing '{% endfor %}'");
    }
    return n;
  }

  const std::vector<Piece>& p_;
  const Lexer& lex_;
  size_t i_ = 0;
};

}  // namespace

std::shared_ptr<const Node> parse_template(const std::string& source, const std::string& where) {
  Lexer lex(source, where);
  const std::vector<Piece> pieces = lex.run();
  return BlockParser(pieces, lex).parse();
}

}  // namespace jointnas::eval::jinja
