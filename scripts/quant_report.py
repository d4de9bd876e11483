#!/usr/bin/env python3
"""Summarises the issue-3 device run (scripts/device_check.sh quant) as markdown tables:
per-format linear micro benchmark, ref-17m perplexity per format, 8B decode/prefill per format.
usage: python3 scripts/quant_report.py OUT_DIR"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main(out):
    rows = []
    path = os.path.join(out, "quant_bench.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(l) for l in f if l.startswith("{")]
    variants = [r for r in rows if "w4_variant" in r]
    rows = [r for r in rows if "format" in r]
    if rows:
        print("| N x K | M | format | path | ms | TFLOP/s | GB/s | x bf16 |")
        print("|---|---:|---|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['N']}x{r['K']} | {r['M']} | {r['format']} | {r['path']} | {r['ms']:.4f} | "
                  f"{r['tflops']:.1f} | {r['gb_s']:.0f} | {r['speedup_vs_bf16']:.2f} |")
    if variants:
        print("\n| N x K | w4 GEMV variant (R*10+U) | ms | x bf16 |")
        print("|---|---:|---:|---:|")
        for r in variants:
            print(f"| {r['N']}x{r['K']} | {r['w4_variant']} | {r['ms']:.4f} | {r['speedup_vs_bf16']:.2f} |")
    base = load(os.path.join(out, "ppl_bf16.json"))
    if base:
        print("\n| format | method | NLL | PPL | vs bf16 PPL | weight MB |")
        print("|---|---|---:|---:|---:|---:|")
        print(f"| bf16 | - | {base['nll']:.5f} | {base['ppl']:.3f} | - | - |")
        for f in ["w8a16", "w4a16_g128", "w8a8", "fp8_e4m3"]:
            for m in ["rtn", "gptq"]:
                p = load(os.path.join(out, f"ppl_{f}_{m}.json"))
                q = load(os.path.join(out, f"quantize_{f}_{m}.json"))
                if not p:
                    continue
                mb = q["report"]["weight_bytes_after"] / 1e6 if q else float("nan")
                print(f"| {f} | {m} | {p['nll']:.5f} | {p['ppl']:.3f} | "
                      f"{100 * (p['ppl'] / base['ppl'] - 1):+.2f}% | {mb:.2f} |")
    b16 = load(os.path.join(out, "bench_8b_bf16.json"))
    if b16:
        print("\n| 8B, every linear in | weight GB | decode ctx128 ms | floor ms | x floor | x bf16 | prefill 2048 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for f in ["bf16", "w8a16", "w4a16_g128", "w8a8", "fp8_e4m3"]:
            b = load(os.path.join(out, f"bench_8b_{f}.json"))
            if not b:
                continue
            d = b["decode"][0]
            pf = b["prefill"][0]["ms"] if b.get("prefill") else float("nan")
            print(f"| {f} | {b['weight_bytes'] / 1e9:.2f} | {d['ms']:.3f} | {d.get('floor_ms', 0):.3f} | "
                  f"{d.get('ratio_to_floor', 0):.2f} | {b16['decode'][0]['ms'] / d['ms']:.2f} | {pf:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
