// The exact derivation of an architecture under budgets (issue 22): minimise an additive quality
// score (search/score_table.h) over every architecture of the space subject to the latency, memory
// and parameter budgets under the latency table's cost model (profile::predict). It grows as well
// as shrinks: the result is the best architecture within the budget, wherever the search started.
//
// Why this is exact. For fixed global choices (hidden size, depth) the kept blocks are fixed, and
// predict() decomposes per kept layer:
//   latency = scale * (head + sum_l block_l) + per_block * kept + constant     (additive per layer)
//   params, weight bytes, KV-cache bytes                                      (additive per layer)
//   activation peak = max(tail, max_l peak of block l)                       (a max, not a sum)
//   RoPE tables = sum over the distinct head sizes of the kept layers         (a set union)
// so a state of the dynamic programme over layers is (score, latency, params, weights + KV, largest
// block peak, set of head sizes). A state is dropped only when another has a score and every cost
// component no larger and a subset of its head sizes: whatever completes the dropped state
// completes the other at no higher score and no higher cost, so the optimum survives (Pareto
// dominance is exact with real-valued costs; no cost is discretised). States whose cheapest
// completion exceeds `relax` x a budget are dropped too (the optimum within the budget and every
// architecture up to relax x the budget survive). An outer loop runs over the global choices. Every
// per-layer cost comes from predict() itself (a model with only that layer kept, minus a model
// with none), and the chosen architecture's totals are checked against predict() of the whole
// model. Only budgeted components enter a state, so an unbudgeted quantity never splits a front.
//
// A front larger than `max_front` is thinned by epsilon-dominance (a state is dropped when another
// has no larger costs and a score at most epsilon higher); the result then reports gap_bound, the
// sum of the epsilons, a bound on how far its score can be from the optimum. 0 means exact. (With
// several budgeted costs, states of incomparable costs survive any epsilon: such a front can stay
// above the cap.)
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/predict.h"
#include "jointnas/search/budget.h"
#include "jointnas/search/score_table.h"
#include "jointnas/search/space.h"

namespace jointnas::search {

struct DeriveOptions {
  double relax = 1.5;          // states beyond relax x a budget are pruned (>= 1)
  int64_t max_front = 200000;  // states per stage before epsilon-thinning
  int64_t hidden = -1;         // only this hidden choice (an index of space.hidden); -1: every one
};

struct Derivation {
  Arch arch;
  double score = 0;
  profile::Cost predicted;  // predict() of `arch`
  std::string binding;      // the budget with the highest use: "latency" | "memory" | "params"
  double budget_use = 0;    // predicted / budget of that budget
  // The cheapest architecture with a better score (the one a larger budget would buy first), when
  // one costs at most relax x the budget; budget_use of it is above 1 by construction.
  bool has_next = false;
  Arch next;
  double next_score = 0, next_budget_use = 0;
  profile::Cost next_predicted;
  double gap_bound = 0;        // 0: exact
  int64_t largest_front = 0;   // most states alive at one stage
  int64_t global_pairs = 0;    // (hidden, depth) pairs solved

  Json to_json(const SearchSpace& space) const;
};

// ConfigError when no architecture meets every budget (naming the smallest costs found) or when the
// scores do not fit the space. `b` must set at least one budget.
Derivation derive(const CostContext& cc, const Budget& b, const ScoreTable& scores, const DeriveOptions& o = {});

// Budget use of a cost: max over the set budgets of cost / budget, and which budget that is.
std::pair<double, std::string> budget_use(const profile::Cost& c, const Budget& b);

}  // namespace jointnas::search
