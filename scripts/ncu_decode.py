#!/usr/bin/env python3
"""Per-kernel durations of one CUDA-graph decode step, from Nsight Compute's CSV.

Usage: ncu --csv --page raw --metrics gpu__time_duration.sum -k regex:NAMES ... > ncu.csv
       python3 scripts/ncu_decode.py ncu.csv KERNELS_PER_STEP [STEP_MS]

ncu runs each kernel alone (serialized, caches flushed between kernels), so the durations are the
kernels' own times without launch gaps or overlap. The last KERNELS_PER_STEP rows are taken as
the last replayed step; with STEP_MS (the graph step measured by `jointnas bench`), the
difference is what launches, gaps and dependencies cost in the graph.
"""
import csv
import sys


def main():
    path, per_step = sys.argv[1], int(sys.argv[2])
    step_ms = float(sys.argv[3]) if len(sys.argv) > 3 else None
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    rows = [r for r in rows if r.get("gpu__time_duration.sum", "").replace(".", "", 1).replace(",", "").isdigit()]
    if len(rows) < per_step:
        sys.exit(f"only {len(rows)} kernels profiled, need {per_step}")
    unit_ns = 1.0
    step = rows[-per_step:]
    total = 0.0
    by = {}
    for r in step:
        d = float(r["gpu__time_duration.sum"].replace(",", "")) * unit_ns
        name = r.get("Kernel Name", "?").split("(")[0].split("<")[0].strip()
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
