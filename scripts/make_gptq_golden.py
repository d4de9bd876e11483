#!/usr/bin/env python3
"""Independent PyTorch reference for GPTQ (tests/fixtures/quant/gptq_golden.safetensors).

Written from Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers" (arXiv:2210.17323), Section 4 / Algorithm 1, and the grid rules of
jointnas/quant/quantize.cpp (docs/formats.md), not from the C++ GPTQ. Run from the repo root
(PyTorch 2.11 + safetensors, CPU):
    python3 scripts/make_gptq_golden.py
The sweep here is the unblocked form of Algorithm 1 (every column updates all later columns at
once, in fp64); the C++ uses lazy block updates, which the paper shows are the same arithmetic
reordered, so the two agree up to rounding.
"""
import os

import torch
from safetensors.torch import save_file

OUT = "tests/fixtures/quant/gptq_golden.safetensors"
N, K, ROWS = 24, 96, 256

# The registry rows this golden covers (jointnas/quant/format.cpp): bits, asymmetric, preferred
# group (0 = per row), scale dtype.
FORMATS = {
    "w4a16_g128": dict(bits=4, asym=True, group=128, scale_dtype=torch.bfloat16),
    "w8a16": dict(bits=8, asym=False, group=0, scale_dtype=torch.float32),
}


def qrange(f):
    if f["asym"]:
        return 0, (1 << f["bits"]) - 1
    m = (1 << (f["bits"] - 1)) - 1
    return -m, m


def group_for(f, k):
    """docs/formats.md: preferred group if it divides K, else 64 or 32 (below it), else per row."""
    if f["group"] == 0:
        return k
    for g in (f["group"], 64, 32):
        if g <= f["group"] and k % g == 0:
            return g
    return k


def next_up(t):
    """The next representable value towards +inf of positive finite bf16 / fp32 values."""
    int_type = {torch.bfloat16: torch.int16, torch.float32: torch.int32}[t.dtype]
    return (t.view(int_type) + 1).view(t.dtype)


def store_scale_up(s, span, qmax, dtype):
    """s (fp32) -> `dtype` (nearest), one step up where stored * qmax < span (in fp64)."""
    st = s.to(dtype)
    short = st.double() * qmax < span.double()
    return torch.where(short, next_up(st), st)


def grid(w, f):
    """Scale [N] and zero [N] (fp32; zero is 0 for symmetric) of one group w [N, g]."""
    w = w.float()
    qmin, qmax = qrange(f)
    if f["asym"]:
        # The range always includes 0 so that an all-zero group stays exactly zero.
        mn = w.min(dim=1).values.clamp(max=0.0)
        mx = w.max(dim=1).values.clamp(min=0.0)
        st = store_scale_up((mx - mn) / qmax, mx.double() - mn.double(), qmax, f["scale_dtype"])
        st = torch.where(st == 0, torch.ones_like(st), st)
        zero = torch.clamp(torch.round(-mn / st.float()), 0, qmax)
        return st, zero
    amax = w.abs().max(dim=1).values
    st = store_scale_up(amax / qmax, amax, qmax, f["scale_dtype"])
    st = torch.where(st == 0, torch.ones_like(st), st)
    return st, torch.zeros_like(amax)


def quant_column(w, scale, zero, f):
    """Round-half-even of w / s (fp32 true division), + zero, clamp: integers as fp32."""
    qmin, qmax = qrange(f)
    return torch.clamp(torch.round(w.float() / scale.float()) + zero, qmin, qmax)


def gptq(w, h, f, damp_percent=0.01, act_order=False):
    """Algorithm 1 of the paper with error feedback through the upper Cholesky factor of H^-1.

    Returns q [N, K] int8, scale [N, G] (format's scale dtype), zero [N, G] uint8 (or None)."""
    n, k = w.shape
    g = group_for(f, k)
    w = w.double().clone()
    h = h.double().clone()
    # A column whose input is always zero: its weights never matter. Setting H_ii = 1 keeps H
    # invertible; zeroing the weights keeps them from taking part in group ranges.
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    # Grids known before the sweep: per row, or (act_order) one per group from the unpermuted W.
    static = g == k or act_order
    scale = torch.empty(n, k // g, dtype=f["scale_dtype"])
    zero = torch.zeros(n, k // g)
    if static:
        for j in range(k // g):
            scale[:, j], zero[:, j] = grid(w[:, j * g:(j + 1) * g], f)
    perm = torch.arange(k)
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
        w = w[:, perm]
        h = h[perm][:, perm]
    h += damp_percent * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    # Section 4, step 2: the rows of H^-1 (restricted to the not-yet-quantized columns) that the
    # sweep needs are the rows of the upper Cholesky factor U of H^-1 (H^-1 = U^T U).
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    q = torch.empty(n, k)
    for j in range(k):
        col = perm[j].item()
        if not static and col % g == 0:
            scale[:, col // g], zero[:, col // g] = grid(w[:, j:j + g], f)
        s, z = scale[:, col // g], zero[:, col // g]
        q[:, j] = quant_column(w[:, j], s, z, f)
        dq = ((q[:, j] - z) * s.float()).double()
        err = (w[:, j] - dq) / u[j, j]
        w[:, j:] -= torch.outer(err, u[j, j:])
    inv = torch.argsort(perm)
    q = q[:, inv]
    return q.to(torch.int8), scale, (zero.to(torch.uint8) if f["asym"] else None)


def main():
    gen = torch.Generator().manual_seed(20221031)
    w = torch.randn(N, K, generator=gen) * 0.05
    # Correlated features, as in a transformer layer's inputs: X = Z A with a random mixing A
    # plus a per-feature scale spread (some channels much larger, like outlier channels).
    z = torch.randn(ROWS, K, generator=gen)
    a = torch.randn(K, K, generator=gen) / K**0.5 + 0.5 * torch.eye(K)
    col_scale = torch.exp(torch.randn(K, generator=gen) * 0.7)
    x = ((z @ a) * col_scale).bfloat16()
    # H = 2/n sum_i x_i x_i^T (n = rows), accumulated in fp64.
    xd = x.double()
    h = (2.0 / ROWS * (xd.T @ xd)).float()
    out = {"w": w, "x": x, "hessian": h}
    for name, f in FORMATS.items():
        for act_order in (False, True):
            tag = name + ("_act_order" if act_order else "")
            q, scale, zero = gptq(w, h, f, act_order=act_order)
            out[f"{tag}.q"] = q
            out[f"{tag}.scale"] = scale
            if zero is not None:
                out[f"{tag}.zero"] = zero
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, OUT,
              metadata={"source": "scripts/make_gptq_golden.py", "damp_percent": "0.01"})
    print(f"wrote {OUT}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
