#include "jointnas/search/cost.h"

#include <cmath>

#include <ATen/ATen.h>

namespace jointnas::search {

profile::CostSpace cost_space(const SearchSpace& s, const model::LlamaConfig& c, const std::vector<int64_t>& block_rank) {
  profile::CostSpace cs;
  cs.hidden = s.hidden;
  const int64_t L = static_cast<int64_t>(s.layers.size());
  for (int64_t l = 0; l < L; ++l) {
    const LayerChoices& lc = s.layers[static_cast<size_t>(l)];
    profile::LayerSpace ls;
    for (int64_t g : lc.kv_groups) {
      for (int64_t hd : lc.head_dims) {
        // The same RoPE base as arch_specs(): theta^(hd / d).
        ls.attention.push_back({g * s.group_size, g, hd,
                                std::pow(c.rope.rope_theta, static_cast<double>(hd) / static_cast<double>(c.head_dim))});
      }
    }
    ls.intermediate = lc.intermediate;
    ls.formats_qkv = lc.formats[0];
    ls.formats_o = lc.formats[1];
    ls.formats_gate_up = lc.formats[2];
    ls.formats_down = lc.formats[3];
    for (int64_t d : s.depth) ls.can_skip = ls.can_skip || !block_kept(block_rank, l, d);
    cs.layers.push_back(std::move(ls));
  }
  return cs;
}

profile::ArchProbs arch_probs(const SearchSpace& s, const ArchDist& d, const std::vector<int64_t>& block_rank) {
  profile::ArchProbs p;
  p.hidden = d.hidden;
  const int64_t L = static_cast<int64_t>(s.layers.size());
  for (int64_t l = 0; l < L; ++l) {
    const size_t i = static_cast<size_t>(l);
    std::vector<double> kept;
    for (int64_t depth : s.depth) kept.push_back(block_kept(block_rank, l, depth) ? 1.0 : 0.0);
    at::Tensor ind = at::tensor(kept, at::TensorOptions().dtype(d.depth.scalar_type())).to(d.depth.device());
    profile::LayerProbs lp;
    lp.attention = at::outer(d.kv_groups[i], d.head_dims[i]).flatten();
    lp.intermediate = d.intermediate[i];
    lp.qkv = d.formats[i][0];
    lp.o = d.formats[i][1];
    lp.gate_up = d.formats[i][2];
    lp.down = d.formats[i][3];
    lp.keep = at::dot(d.depth, ind);
    p.layers.push_back(std::move(lp));
  }
  return p;
}

profile::Selection selection(const SearchSpace& s, const Arch& a, const std::vector<int64_t>& block_rank) {
  profile::Selection sel;
  sel.hidden = a.hidden;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const int64_t nhd = static_cast<int64_t>(s.layers[l].head_dims.size());
    sel.attention.push_back(a.kv_groups[l] * nhd + a.head_dims[l]);
    sel.intermediate.push_back(a.intermediate[l]);
    sel.qkv.push_back(a.formats[l][0]);
    sel.o.push_back(a.formats[l][1]);
    sel.gate_up.push_back(a.formats[l][2]);
    sel.down.push_back(a.formats[l][3]);
    sel.keep.push_back(block_kept(block_rank, static_cast<int64_t>(l), s.depth[static_cast<size_t>(a.depth)]));
  }
  return sel;
}

}  // namespace jointnas::search
