#include "jointnas/search/score_table.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"

namespace jointnas::search {
namespace {

std::vector<double> numbers(const Json& j, const std::string& what, const std::string& where) {
  JNAS_CHECK_IO(j.is_array(), "{}: '{}' must be an array of numbers", where, what);
  std::vector<double> v;
  for (const Json& x : j) {
    JNAS_CHECK_IO(x.is_number() && std::isfinite(x.get<double>()), "{}: '{}' must hold finite numbers", where, what);
    v.push_back(x.get<double>());
  }
  return v;
}

void check_size(const std::vector<double>& v, size_t n, const std::string& what, const std::string& where) {
  JNAS_CHECK_CONFIG(v.size() == n, "{}: {} lists {} scores, the search space has {} choices; score the same space",
                    where, what, v.size(), n);
  for (double x : v) JNAS_CHECK_CONFIG(std::isfinite(x), "{}: {} holds a non-finite score", where, what);
}

// Mean ranks (1-based) with ties averaged.
std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<size_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && x[idx[j + 1]] == x[idx[i]]) ++j;
    const double mean = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = mean;
    i = j + 1;
  }
  return r;
}

}  // namespace

const LayerScores& ScoreTable::layer(int64_t hidden, size_t l) const {
  const size_t row = layers.size() == 1 ? 0 : static_cast<size_t>(hidden);
  return layers.at(row).at(l);
}

double ScoreTable::layer_score(int64_t hidden, size_t l, int64_t attention, int64_t intermediate,
                               const std::array<int64_t, kNumFormatSlots>& formats) const {
  const LayerScores& s = layer(hidden, l);
  double v = s.attention.at(static_cast<size_t>(attention)) + s.intermediate.at(static_cast<size_t>(intermediate));
  for (int k = 0; k < kNumFormatSlots; ++k) v += s.formats[k].at(static_cast<size_t>(formats[k]));
  return v;
}

double ScoreTable::score(const SearchSpace& space, const Arch& a, const std::vector<int64_t>& block_rank) const {
  double v = global.at(static_cast<size_t>(a.hidden)).at(static_cast<size_t>(a.depth));
  const int64_t depth = space.depth[static_cast<size_t>(a.depth)];
  for (size_t l = 0; l < space.layers.size(); ++l) {
    if (!block_kept(block_rank, static_cast<int64_t>(l), depth)) continue;
    const int64_t nhd = static_cast<int64_t>(space.layers[l].head_dims.size());
    v += layer_score(a.hidden, l, a.kv_groups[l] * nhd + a.head_dims[l], a.intermediate[l], a.formats[l]);
  }
  return v;
}

void ScoreTable::check(const SearchSpace& space, const std::string& where) const {
  JNAS_CHECK_CONFIG(global.size() == space.hidden.size(),
                    "{}: scores for {} hidden choices, the search space has {}; score the same space", where,
                    global.size(), space.hidden.size());
  for (size_t h = 0; h < global.size(); ++h) check_size(global[h], space.depth.size(), fmt::format("global[{}]", h), where);
  JNAS_CHECK_CONFIG(layers.size() == 1 || layers.size() == space.hidden.size(),
                    "{}: {} rows of layer scores; expected 1 or one per hidden choice ({})", where, layers.size(),
                    space.hidden.size());
  for (size_t h = 0; h < layers.size(); ++h) {
    JNAS_CHECK_CONFIG(layers[h].size() == space.layers.size(), "{}: layer scores for {} layers, the space has {}",
                      where, layers[h].size(), space.layers.size());
    for (size_t l = 0; l < space.layers.size(); ++l) {
      const LayerChoices& lc = space.layers[l];
      const LayerScores& s = layers[h][l];
      const std::string at = fmt::format("layers[{}][{}].", h, l);
      check_size(s.attention, lc.kv_groups.size() * lc.head_dims.size(), at + "attention", where);
      check_size(s.intermediate, lc.intermediate.size(), at + "intermediate", where);
      for (int k = 0; k < kNumFormatSlots; ++k) check_size(s.formats[k], lc.formats[k].size(), at + std::string(model::slot_name(model::kSlots[k])), where);
    }
  }
}

Json ScoreTable::to_json() const {
  Json rows = Json::array();
  for (const auto& row : layers) {
    Json r = Json::array();
    for (const LayerScores& s : row) {
      Json f = Json::object();
      for (int k = 0; k < kNumFormatSlots; ++k) f[std::string(model::slot_name(model::kSlots[k]))] = s.formats[k];
      r.push_back(Json{{"attention", s.attention}, {"intermediate", s.intermediate}, {"formats", f}});
    }
    rows.push_back(r);
  }
  return Json{{"format", "jointnas-scores"}, {"version", 1}, {"source", source}, {"global", global}, {"layers", rows}};
}

ScoreTable ScoreTable::from_json(const Json& j, const std::string& where) {
  JNAS_CHECK_IO(has_format_tag(j, "jointnas-scores"),
                "{}: not a jointnas score table (expected \"format\": \"jointnas-scores\")", where);
  ScoreTable t;
  t.source = string_or(j, "source", "");
  JNAS_CHECK_IO(j.contains("global") && j["global"].is_array() && j.contains("layers") && j["layers"].is_array(),
                "{}: 'global' and 'layers' must be arrays", where);
  for (const Json& g : j["global"]) t.global.push_back(numbers(g, "global", where));
  for (const Json& row : j["layers"]) {
    JNAS_CHECK_IO(row.is_array(), "{}: every row of 'layers' must be an array", where);
    std::vector<LayerScores> r;
    for (const Json& s : row) {
      JNAS_CHECK_IO(s.is_object() && s.contains("attention") && s.contains("intermediate") && s.contains("formats") &&
                        s["formats"].is_object(),
                    "{}: a layer's scores need 'attention', 'intermediate' and 'formats'", where);
      LayerScores ls;
      ls.attention = numbers(s["attention"], "attention", where);
      ls.intermediate = numbers(s["intermediate"], "intermediate", where);
      for (int k = 0; k < kNumFormatSlots; ++k) {
        JNAS_CHECK_IO(s["formats"].contains(std::string(model::slot_name(model::kSlots[k]))), "{}: formats lack '{}'", where, std::string(model::slot_name(model::kSlots[k])));
        ls.formats[k] = numbers(s["formats"][std::string(model::slot_name(model::kSlots[k]))], std::string(model::slot_name(model::kSlots[k])), where);
      }
      r.push_back(std::move(ls));
    }
    t.layers.push_back(std::move(r));
  }
  return t;
}

ScoreTable score_table_from_log_probs(const SearchSpace& s, const std::map<std::string, std::vector<double>>& lp) {
  // -log p of choice c of a decision; 0 for a decision the logits do not list (a single choice).
  auto nlp = [&](const std::string& name, size_t n) {
    std::vector<double> v(n, 0.0);
    const auto it = lp.find(name);
    if (it == lp.end()) return v;
    JNAS_CHECK_CONFIG(it->second.size() == n, "log-probabilities of '{}' list {} choices, the space has {}", name,
                      it->second.size(), n);
    for (size_t i = 0; i < n; ++i) v[i] = -it->second[i];
    return v;
  };
  ScoreTable t;
  t.source = "dnas_log_probs";
  const std::vector<double> hid = nlp("arch_hidden", s.hidden.size()), dep = nlp("arch_depth", s.depth.size());
  for (double h : hid) {
    std::vector<double> row;
    for (double d : dep) row.push_back(h + d);
    t.global.push_back(row);
  }
  std::vector<LayerScores> row;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerChoices& lc = s.layers[l];
    const std::string p = fmt::format("layers.{}.", l);
    const std::vector<double> g = nlp(p + "arch_kv_groups", lc.kv_groups.size()), d = nlp(p + "arch_head_dim", lc.head_dims.size());
    LayerScores ls;
    for (double gv : g) {
      for (double dv : d) ls.attention.push_back(gv + dv);
    }
    ls.intermediate = nlp(p + "arch_intermediate", lc.intermediate.size());
    for (int k = 0; k < kNumFormatSlots; ++k) ls.formats[k] = nlp(p + "arch_format_" + std::string(model::slot_name(model::kSlots[k])), lc.formats[k].size());
    row.push_back(std::move(ls));
  }
  t.layers.push_back(std::move(row));
  return t;
}

namespace {

template <typename T>
std::vector<double> pick(const std::vector<double>& v, const std::vector<T>& from, const std::vector<T>& to,
                         const std::string& what) {
  std::vector<double> out;
  for (const T& x : to) {
    const auto it = std::find(from.begin(), from.end(), x);
    JNAS_CHECK_CONFIG(it != from.end(), "map_scores: {} choice {} is not in the scored space", what, fmt::format("{}", x));
    out.push_back(v.at(static_cast<size_t>(it - from.begin())));
  }
  return out;
}

}  // namespace

ScoreTable map_scores(const ScoreTable& t, const SearchSpace& from, const SearchSpace& to) {
  t.check(from, "map_scores");
  JNAS_CHECK_CONFIG(from.layers.size() == to.layers.size(), "map_scores: spaces of {} and {} layers", from.layers.size(),
                    to.layers.size());
  ScoreTable r;
  r.source = t.source;
  // Global: rows by hidden value, columns by depth value.
  std::vector<std::vector<double>> cols;
  for (const auto& row : t.global) cols.push_back(pick(row, from.depth, to.depth, "depth"));
  for (int64_t h : to.hidden) {
    const auto it = std::find(from.hidden.begin(), from.hidden.end(), h);
    JNAS_CHECK_CONFIG(it != from.hidden.end(), "map_scores: hidden choice {} is not in the scored space", h);
    r.global.push_back(cols[static_cast<size_t>(it - from.hidden.begin())]);
  }
  std::vector<size_t> rows;
  if (t.layers.size() == 1) {
    rows.push_back(0);
  } else {
    for (int64_t h : to.hidden) rows.push_back(static_cast<size_t>(std::find(from.hidden.begin(), from.hidden.end(), h) - from.hidden.begin()));
  }
  for (size_t row : rows) {
    std::vector<LayerScores> out;
    for (size_t l = 0; l < to.layers.size(); ++l) {
      const LayerChoices &f = from.layers[l], &g = to.layers[l];
      const LayerScores& s = t.layers[row][l];
      LayerScores m;
      // The attention index is a pair: map KV groups and head sizes separately.
      for (int64_t kv : g.kv_groups) {
        const size_t fi = static_cast<size_t>(std::find(f.kv_groups.begin(), f.kv_groups.end(), kv) - f.kv_groups.begin());
        JNAS_CHECK_CONFIG(fi < f.kv_groups.size(), "map_scores: layer {} kv_groups {} is not in the scored space", l, kv);
        const std::vector<double> part(s.attention.begin() + static_cast<std::ptrdiff_t>(fi * f.head_dims.size()),
                                       s.attention.begin() + static_cast<std::ptrdiff_t>((fi + 1) * f.head_dims.size()));
        for (double v : pick(part, f.head_dims, g.head_dims, "head_dim")) m.attention.push_back(v);
      }
      m.intermediate = pick(s.intermediate, f.intermediate, g.intermediate, "intermediate");
      for (int k = 0; k < kNumFormatSlots; ++k) m.formats[k] = pick(s.formats[k], f.formats[k], g.formats[k], std::string(model::slot_name(model::kSlots[k])));
      out.push_back(std::move(m));
    }
    r.layers.push_back(std::move(out));
  }
  return r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (x.size() != y.size() || x.size() < 2) return nan;
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  // Pearson correlation of the ranks (exact with ties, unlike 1 - 6 sum d^2 / (n (n^2 - 1))).
  const double n = static_cast<double>(x.size()), mean = (n + 1) / 2;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx == 0 || syy == 0) return nan;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace jointnas::search
