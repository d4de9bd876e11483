#!/usr/bin/env python3
"""Issue 3 probe: torch._scaled_mm with row-wise scales at M = 2048 on the Llama-3.1-8B linear
shapes, with and without fast accumulation, against bf16 torch.mm (the cuBLAS path of the bf16
format). CUDA events, median of repeats, rotating weight copies (>= 256 MB). GPU only.
usage: python3 scripts/fp8_accum_probe.py [M]"""
import sys

import torch


def bench(fn, n, warmup=5, reps=30):
    for i in range(warmup):
        fn(i % n)
    ts = []
    for r in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn(r % n)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return sorted(ts)[len(ts) // 2] * 1e3  # us


def operands(M, N, K, dev):
    """Rotating weight copies (>= 256 MB in all, bf16 and e4m3), x in bf16 and e4m3, and random
    per-channel / per-token scales: (copies, x, wb, w8, sw, qx, sx)."""
    copies = max(2, (256 << 20) // (N * K))
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    wb = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
    w8 = [w.to(torch.float8_e4m3fn) for w in wb]
    sw = torch.rand(1, N, device=dev, dtype=torch.float32) + 0.5
    qx = x.to(torch.float8_e4m3fn)
    sx = torch.rand(M, 1, device=dev, dtype=torch.float32) + 0.5
    return copies, x, wb, w8, sw, qx, sx


def main():
    M = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    dev = "cuda"
    print(torch.__version__, torch.cuda.get_device_name())
    for N, K in [(4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336)]:
        copies, x, wb, w8, sw, qx, sx = operands(M, N, K, dev)
        t_bf16 = bench(lambda i: torch.mm(x, wb[i].t()), copies)
        res = {}
        for fast in (False, True):
            res[fast] = bench(lambda i: torch._scaled_mm(qx, w8[i].t(), scale_a=sx, scale_b=sw,
                                                         out_dtype=torch.bfloat16, use_fast_accum=fast), copies)
        # The two accumulations against an fp64 reference of the same fp8 operands.
        ref = (qx.double() @ w8[0].double().t()) * sx.double() * sw.double()
        err = {}
        for fast in (False, True):
            y = torch._scaled_mm(qx, w8[0].t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16,
                                 use_fast_accum=fast).double()
            err[fast] = ((y - ref).norm() / ref.norm()).item()
        print(f"{N}x{K} M={M}: bf16 mm {t_bf16:.1f} us; scaled_mm {res[False]:.1f} us ({t_bf16 / res[False]:.2f}x), "
              f"fast accum {res[True]:.1f} us ({t_bf16 / res[True]:.2f}x); rel. error vs fp64 {err[False]:.2e} / {err[True]:.2e}")


if __name__ == "__main__":
    main()
