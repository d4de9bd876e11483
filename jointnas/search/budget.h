// Budgets and the architecture's cost under them (method.md: "Budget repair"): the predicted cost
// of an Arch from the latency table, the excess over the budgets, the feasibility check run
// before any training, the fastest architecture of a space, and the repair that steps an
// architecture down until the table says it meets every budget.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/predict.h"
#include "jointnas/profile/workload.h"
#include "jointnas/search/space.h"

namespace jointnas::search {

// What a budget bounds: the predicted latency (ms), the runtime's predicted peak memory (bytes:
// weights as stored, the KV cache at the workload's batch and context, the largest set of live
// activations, the RoPE tables and the table's calibrated runtime constant) and the parameters.
enum class BudgetKind : uint8_t { kLatency, kMemory, kParams };
inline constexpr std::array<BudgetKind, 3> kBudgetKinds = {BudgetKind::kLatency, BudgetKind::kMemory,
                                                           BudgetKind::kParams};
const char* budget_name(BudgetKind k);                 // "latency", "memory (predicted peak)", "parameters"
std::string budget_value_text(BudgetKind k, double v);  // "1.2345 ms", "12.00 MiB", "1234"
// The quantity a budget of kind `k` bounds.
double budgeted(const profile::Cost& c, BudgetKind k);

// Hard limits on the deployed model; 0 = no limit.
struct Budget {
  double latency_ms = 0, memory_bytes = 0, params = 0;
  double limit(BudgetKind k) const;
  bool any() const { return latency_ms > 0 || memory_bytes > 0 || params > 0; }
  Json to_json() const;
  static Budget from_json(const Json& j, const std::string& source);
};

// The table, workload and space the costs come from.
struct CostContext {
  const model::LlamaConfig* config = nullptr;
  const SearchSpace* space = nullptr;
  std::vector<int64_t> block_rank;
  const profile::LatencyTable* table = nullptr;
  profile::Workload workload;
  int64_t dtype_bytes = 2;
};

profile::Cost arch_cost(const CostContext& cc, const Arch& arch);
// sum over budgets of max(0, cost / budget - 1): 0 iff every budget is met.
double budget_excess(const profile::Cost& c, const Budget& b);

// The lowest achievable value of each budgeted quantity over the space (coordinate descent from
// the smallest architecture; the cost is additive per decision, so it converges to the minimum on
// monotone tables). Throws ConfigError when a budget lies below it, naming that minimum and the
// architecture that reaches it: called before any training.
void check_budget_feasible(const CostContext& cc, const Budget& b);
// The architecture of least predicted latency by the same descent (the lower end of a budget sweep).
Arch fastest_arch(const CostContext& cc);

// Steps the architecture down until it meets the budgets: each move changes one decision, picking
// the move with the least log-probability lost per unit of budget excess removed. `log_probs` by
// decision name (from the supernet's logits; missing names count as uniform). When no single move
// reduces the excess (a local minimum), the space's cheapest architecture by a limited kind that
// meets the budget is the result; ConfigError when none does.
struct Repair {
  Arch arch;
  std::vector<std::string> moves;  // "layers.3.arch_format_down: bf16 -> w4a16_g128" ...
};
Repair repair_to_budget(const CostContext& cc, const Budget& b, Arch start,
                        const std::map<std::string, std::vector<double>>& log_probs);

}  // namespace jointnas::search
