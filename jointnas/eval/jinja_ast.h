// Internal to the Jinja engine (jinja.h): the syntax tree that jinja_parse.cpp builds and
// jinja.cpp evaluates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"

namespace jointnas::eval::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

enum class ExprKind {
  kLiteral,    // value
  kName,       // name
  kList,       // items (a list literal or a tuple)
  kDict,       // items: key, value, key, value, ...
  kAttr,       // items[0] . name
  kItem,       // items[0] [ items[1] ]
  kSlice,      // items[0] [ items[1] : items[2] : items[3] ] (null entries = omitted)
  kCall,       // items[0] ( items[1..] ), keyword arguments in kwargs
  kFilter,     // items[0] | name ( items[1..] ), kwargs
  kTest,       // items[0] is [not] name ( items[1..] ); negate
  kUnary,      // op items[0]: "-", "+", "not"
  kBinary,     // items[0] op items[1]: + - * / // % ** ~ and or
  kCompare,    // items[0] ops[0] items[1] ops[1] items[2] ... (chained)
  kCondition,  // items[1] if items[0] else items[2] (items[2] may be null)
};

struct Expr {
  ExprKind kind;
  Json value;                       // kLiteral
  std::string name;                 // kName, kAttr, kCall (unused), kFilter, kTest, kUnary / kBinary op
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;     // kCompare
  bool negate = false;              // kTest
};

enum class NodeKind { kText, kOutput, kIf, kFor, kSet, kBody };

struct Node {
  NodeKind kind;
  std::string text;                                   // kText
  ExprPtr expr;                                       // kOutput, kSet (value), kFor (iterable)
  std::vector<std::string> targets;                   // kFor loop variables, kSet name
  ExprPtr filter;                                     // kFor: "if" condition (may be null)
  std::vector<std::pair<ExprPtr, std::shared_ptr<const Node>>> branches;  // kIf: (cond, body)
  std::shared_ptr<const Node> body, else_body;        // kFor (else_body may be null); kIf else
  std::vector<std::shared_ptr<const Node>> children;  // kBody
};

std::shared_ptr<const Node> parse_template(const std::string& source, const std::string& where);

}  // namespace jointnas::eval::jinja
