// Packed layouts (see pack.h) and their bit-exact round trip.
#include "jointnas/quant/pack.h"

#include <ATen/ATen.h>

namespace jointnas::quant {

int64_t PackedWeight::bytes() const {
  int64_t b = 0;
  for (const at::Tensor* t : {&data, &scale, &zero}) {
    if (t->defined()) b += t->numel() * static_cast<int64_t>(t->element_size());
  }
  return b;
}

PackedWeight PackedWeight::to(c10::Device device) const {
  PackedWeight p = *this;
  for (at::Tensor* t : {&p.data, &p.scale, &p.zero}) {
    if (t->defined()) *t = t->to(device).contiguous();
  }
  return p;
}

PackedWeight pack(const QuantizedWeight& qw) {
  const QuantFormat& f = *qw.format;
  PackedWeight p;
  p.format = &f;
  p.out_features = qw.q.size(0);
  p.in_features = qw.q.size(1);
  p.group = qw.group;
  p.scale = qw.scale;
  p.zero = qw.zero;
  if (f.weight == WeightType::kGgml) {
    // ggml's blocks are the packed layout (and GGUF's): K is the group, not q's width.
    p.in_features = qw.group;
    p.data = qw.q.contiguous();
  } else if (f.weight == WeightType::kInt && f.weight_bits == 4) {
    TORCH_CHECK(p.in_features % 2 == 0, "pack: ", f.name, " stores two values per byte, so K (",
                p.in_features, ") must be even");
    // Values are in [0, 15] (asymmetric) or [-7, 7] (symmetric): keep the low 4 bits.
    at::Tensor u = qw.q.to(at::kShort).bitwise_and(0xF).reshape({p.out_features, -1, 2});
    at::Tensor lo = u.select(-1, 0), hi = u.select(-1, 1);
    p.data = lo.bitwise_or(hi.bitwise_left_shift(4)).to(at::kByte).contiguous();
  } else {
    p.data = qw.q.contiguous();
  }
  return p;
}

QuantizedWeight unpack(const PackedWeight& p) {
  const QuantFormat& f = *p.format;
  QuantizedWeight qw;
  qw.format = &f;
  qw.group = p.group;
  qw.scale = p.scale;
  qw.zero = p.zero;
  if (f.weight == WeightType::kInt && f.weight_bits == 4) {
    at::Tensor b = p.data.to(at::kShort);
    at::Tensor lo = b.bitwise_and(0xF), hi = b.bitwise_right_shift(4).bitwise_and(0xF);
    at::Tensor u = at::stack({lo, hi}, -1).reshape({p.out_features, p.in_features});
    if (!f.asymmetric) u = at::where(u >= 8, u - 16, u);  // sign-extend the nibble
    qw.q = u.to(at::kChar);
  } else {
    qw.q = p.data;
  }
  return qw;
}

}  // namespace jointnas::quant
