#!/usr/bin/env python3
"""Issue 3 probe: which fp8 GEMM does PyTorch 2.11 give at M = 2048 on the Llama-3.1-8B linear
shapes, timed in-graph (one CUDA graph calls the GEMM once per rotating weight copy, >= 256 MB in
all, back to back; median of graph replays / copies), against bf16 torch.mm. Variants:
  rowwise    _scaled_mm, per-token x per-channel fp32 scales, fast accumulation (what QuantLinear runs)
  tensorwise _scaled_mm, one scale per operand (the cuBLASLt path), fast accumulation
  swapped    rowwise with the operands swapped: y^T = W x^T (other tile heuristics)
x is already fp8 here: the per-token quantization of x is not included. GPU only.
usage: python3 scripts/fp8_gemm_probe.py [M]"""
import sys

import torch

from fp8_accum_probe import operands


def in_graph_us(fn, n, replays=20):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(n):
            fn(i)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(n):
            fn(i)
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / n)
    return sorted(ts)[len(ts) // 2]


def main():
    M = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    dev = "cuda"
    print(torch.__version__, torch.cuda.get_device_name())
    for N, K in [(4096, 4096), (1024, 4096), (6144, 4096), (14336, 4096), (4096, 14336)]:
        copies, x, wb, w8, sw, qx, sx = operands(M, N, K, dev)
        one = torch.ones((), device=dev, dtype=torch.float32)
        t = {"bf16": in_graph_us(lambda i: torch.mm(x, wb[i].t()), copies)}
        t["rowwise"] = in_graph_us(lambda i: torch._scaled_mm(qx, w8[i].t(), scale_a=sx, scale_b=sw,
                                                              out_dtype=torch.bfloat16, use_fast_accum=True), copies)
        t["tensorwise"] = in_graph_us(lambda i: torch._scaled_mm(qx, w8[i].t(), scale_a=one, scale_b=one,
                                                                 out_dtype=torch.bfloat16, use_fast_accum=True), copies)
        swt, sxt = sw.t().contiguous(), sx.t().contiguous()
        t["swapped"] = in_graph_us(lambda i: torch._scaled_mm(w8[i], qx.t(), scale_a=swt, scale_b=sxt,
                                                              out_dtype=torch.bfloat16, use_fast_accum=True), copies)
        print(f"{N}x{K} M={M}: " + ", ".join(f"{k} {v:.1f} us ({t['bf16'] / v:.2f}x)" for k, v in t.items()), flush=True)


if __name__ == "__main__":
    main()
