#!/usr/bin/env python3
"""Where the time of a CUDA-graph decode step goes, from an Nsight Systems kernel trace.

Usage: nsys stats --report cuda_gpu_trace --format csv -o PREFIX REPORT.nsys-rep
       python3 scripts/nsys_decode.py PREFIX_cuda_gpu_trace.csv [MIN_KERNELS]

Kernels are split into steps at gaps longer than 20 us (graph replays are separated by the host's
event record and sync); steps with fewer than MIN_KERNELS kernels (default 100: warm-up calls,
copies) are dropped. Prints, for the median step: span, sum of kernel durations, idle time between
kernels, and per kernel name the count, total and mean duration.
"""
import csv
import statistics
import sys


def main():
    path = sys.argv[1]
    min_kernels = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            start = r.get("Start (ns)") or r.get("Start")
            dur = r.get("Duration (ns)") or r.get("Duration")
            name = r.get("Name", "")
            if start is None or dur is None or not name or name.startswith("[CUDA mem"):
                continue
            rows.append((int(float(start)), int(float(dur)), name))
    rows.sort()
    steps, cur = [], []
    for r in rows:
        if cur and r[0] - (cur[-1][0] + cur[-1][1]) > 20_000:
            steps.append(cur)
            cur = []
        cur.append(r)
    if cur:
        steps.append(cur)
    steps = [s for s in steps if len(s) >= min_kernels]
    if not steps:
        sys.exit("no step with enough kernels")
    spans = [s[-1][0] + s[-1][1] - s[0][0] for s in steps]
    med = sorted(range(len(steps)), key=lambda i: spans[i])[len(steps) // 2]
    s = steps[med]
    busy = sum(d for _, d, _ in s)
    # Overlap-aware idle time: the union of kernel intervals against the span.
    union, end = 0, None
    for st, d, _ in s:
        e = st + d
        if end is None or st >= end:
            union += d
            end = e
        elif e > end:
            union += e - end
            end = e
    print(f"steps {len(steps)}, kernels per step {len(s)}, span median {statistics.median(spans) / 1e3:.1f} us")
    print(f"median step: span {spans[med] / 1e3:.1f} us, kernel time {busy / 1e3:.1f} us, "
          f"GPU busy (union) {union / 1e3:.1f} us, idle {(spans[med] - union) / 1e3:.1f} us")
    by = {}
    for _, d, n in s:
        short = n.split("(")[0].split("<")[0].strip()[:60]
        c, t = by.get(short, (0, 0))
        by[short] = (c + 1, t + d)
    print(f"{'kernel':60} {'count':>6} {'total us':>10} {'mean us':>9}")
    for n, (c, t) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"{n:60} {c:6d} {t / 1e3:10.1f} {t / c / 1e3:9.2f}")


if __name__ == "__main__":
    main()
