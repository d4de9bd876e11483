#!/usr/bin/env python3
"""Per-kernel durations of one CUDA-graph decode step, from Nsight Compute's CSV.

Usage: ncu --csv --print-units base --page raw --metrics gpu__time_duration.sum,launch__grid_size
           -k regex:NAMES ... > ncu.csv
       python3 scripts/ncu_decode.py ncu.csv KERNELS_PER_STEP|auto [STEP_MS]

ncu runs each kernel alone (serialized, caches flushed between kernels), so the durations are the
kernels' own times without launch gaps or overlap. The last KERNELS_PER_STEP rows are taken as
the last replayed step (auto: the kernels after the second-to-last launch of the largest grid,
the LM head GEMV that ends every step, through the last one); with STEP_MS (the graph step measured by `jointnas bench`), the
difference is what launches, gaps and dependencies cost in the graph. ncu locks base clocks
and flushes caches by default, so its kernel times run longer than in the replayed graph and the
difference can be negative (-1.15 ms on an H200, 2026-11-27): compare kernels with each other.
"""
import csv
import re
import sys


def short_name(full):
    """'void (anonymous namespace)::gemv_bf16_kernel<4, 2, float>(const int4 *, ...)' -> 'gemv_bf16_kernel'."""
    name = re.sub(r"^void\s+", "", full.strip())
    depth, out = 0, []
    for ch in name:  # drop template arguments and the parameter list (nested brackets)
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).split("::")[-1].strip() or full


def main():
    path, per_step_arg = sys.argv[1], sys.argv[2]
    step_ms = float(sys.argv[3]) if len(sys.argv) > 3 else None
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    rows = [r for r in rows if r.get("gpu__time_duration.sum", "").replace(".", "", 1).replace(",", "").isdigit()]
    if per_step_arg == "auto":
        grids = [int(float(r.get("launch__grid_size", "0").replace(",", "") or 0)) for r in rows]
        ends = [i for i, g in enumerate(grids) if g == max(grids)]
        if len(ends) < 2:
            sys.exit("auto: fewer than two launches of the largest grid (the LM head)")
        per_step = ends[-1] - ends[-2]
    else:
        per_step = int(per_step_arg)
    if len(rows) < per_step:
        sys.exit(f"only {len(rows)} kernels profiled, need {per_step}")
    unit_ns = 1.0
    step = rows[-per_step:]
    total = 0.0
    by = {}
    for r in step:
        d = float(r["gpu__time_duration.sum"].replace(",", "")) * unit_ns
        name = short_name(r.get("Kernel Name", "?"))
        grid = r.get("Grid Size", "")
        key = f"{name} {grid}"
        c, t = by.get(key, (0, 0.0))
        by[key] = (c + 1, t + d)
        total += d
    print(f"kernels {len(step)}, sum of kernel durations {total / 1e3:.1f} us")
    if step_ms:
        print(f"graph step {step_ms * 1e3:.1f} us: launches, gaps and dependencies {step_ms * 1e3 - total / 1e3:.1f} us")
    print(f"{'kernel grid':70} {'count':>6} {'total us':>10} {'mean us':>9}")
    for k, (c, t) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"{k[:70]:70} {c:6d} {t / 1e3:10.1f} {t / c / 1e3:9.2f}")


if __name__ == "__main__":
    main()
