// Adam on a list of leaf tensors, kept here (not torch::optim) so that its state is plain tensors
// a checkpoint can hold, and so that single tensors can be frozen (decided architecture choices).
#pragma once

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace jointnas::search {

struct Adam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int64_t t = 0;
  std::vector<at::Tensor> params, m, v;
  std::vector<bool> frozen;
  Adam(std::vector<at::Tensor> ps, double rate) : lr(rate), params(std::move(ps)) {
    for (const auto& p : params) {
      m.push_back(at::zeros_like(p));
      v.push_back(at::zeros_like(p));
    }
    frozen.assign(params.size(), false);
  }
  void step() {
    at::NoGradGuard ng;
    ++t;
    const double c1 = 1.0 - std::pow(b1, static_cast<double>(t)), c2 = 1.0 - std::pow(b2, static_cast<double>(t));
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& g = params[i].grad();
      if (frozen[i] || !g.defined()) continue;
      m[i].mul_(b1).add_(g, 1.0 - b1);
      v[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
      params[i].sub_((m[i] / c1) / ((v[i] / c2).sqrt() + eps) * lr);
    }
  }
  void zero_grad() {
    for (auto& p : params) p.mutable_grad() = at::Tensor();
  }
  void set_requires_grad(bool on) {
    for (auto& p : params) p.requires_grad_(on);
  }
};

}  // namespace jointnas::search
