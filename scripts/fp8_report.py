#!/usr/bin/env python3
"""Summary of quant_bench's rows for the formats that quantize activations (issue 3, fp8 at
M = 2048): per shape and M, bf16 against the linear that quantizes x itself (o_proj's case) and
the linear from codes a producer wrote (q/k/v, gate/up, down), in-graph; then the producers, and
producer + linear against bf16 producer + bf16 linear. Reads the JSON lines of bench/quant_bench.
usage: python3 scripts/fp8_report.py quant_bench.jsonl"""
import json
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    lin = {}
    prod = {}
    for r in rows:
        if "op" in r:
            prod[(r["op"], r["M"], r["format"])] = r["graph_ms"]
        elif "graph_ms" in r and "format" in r:
            lin[(r["N"], r["K"], r["M"], r["format"], r.get("input", "x"))] = r["graph_ms"]
    print("| N x K | M | format | bf16 us | quantizes x itself: us, x bf16 | from codes: us, x bf16 |")
    print("|---|---:|---|---:|---:|---:|")
    for (n, k, m, f, inp), t in sorted(lin.items()):
        if inp != "codes":
            continue
        b = lin[(n, k, m, "bf16", "x")]
        own = lin[(n, k, m, f, "x")]
        print(f"| {n}x{k} | {m} | {f} | {b * 1e3:.1f} | {own * 1e3:.1f}, {b / own:.2f}x | {t * 1e3:.1f}, **{b / t:.2f}x** |")
    if not prod:
        return
    print("\n| producer | M | bf16 us | w8a8 us | fp8_e4m3 us |")
    print("|---|---:|---:|---:|---:|")
    for op in ("rms_norm", "silu_mul", "attn_out"):
        for m in sorted({k[1] for k in prod if k[0] == op}):
            v = [prod.get((op, m, f), float("nan")) * 1e3 for f in ("bf16", "w8a8", "fp8_e4m3")]
            print(f"| {op} | {m} | {v[0]:.1f} | {v[1]:.1f} | {v[2]:.1f} |")
    # Producer + linear, as one block runs them: RMSNorm + q/k/v (6144x4096), the attention output's
    # transpose + o_proj (4096x4096), RMSNorm + gate/up (28672x4096 is not benchmarked: 14336x4096
    # stands in), SiLU * up + down (4096x14336).
    print("\n| producer + linear | M | bf16 us | fp8 us | x bf16 |")
    print("|---|---:|---:|---:|---:|")
    for op, (n, k) in (("rms_norm", (6144, 4096)), ("attn_out", (4096, 4096)), ("rms_norm", (14336, 4096)),
                       ("silu_mul", (4096, 14336))):
        for m in sorted({key[1] for key in prod if key[0] == op}):
            try:
                b = prod[(op, m, "bf16")] + lin[(n, k, m, "bf16", "x")]
                f = prod[(op, m, "fp8_e4m3")] + lin[(n, k, m, "fp8_e4m3", "codes")]
            except KeyError:
                continue
            note = " (half of gate/up)" if (n, k) == (14336, 4096) else ""
            print(f"| {op} + {n}x{k}{note} | {m} | {b * 1e3:.1f} | {f * 1e3:.1f} | {b / f:.2f}x |")


if __name__ == "__main__":
    main()
