#!/usr/bin/env python3
"""Scatter plots of predicted vs measured latency (and, where the rows have it, peak memory) from
`jointnas profile --validate-out` files: one column per file, latency on the first row, peak
memory on the second when any file measured it (CUDA).
usage: python3 scripts/plot_profile_validation.py OUT.png TITLE FILE [FILE ...]
Needs matplotlib (`pip install matplotlib`); documentation tooling only, not used by CI or the demo."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def panel(ax, meas, pred, unit, title):
    lo, hi = min(pred + meas) * 0.97, max(pred + meas) * 1.03
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="prediction = measurement")
    ax.fill_between([lo, hi], [lo * 0.95, hi * 0.95], [lo * 1.05, hi * 1.05], color="gray", alpha=0.15,
                    label="±5 %")
    ax.scatter(meas, pred, s=18)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"measured {unit}")
    ax.set_ylabel(f"predicted {unit}")
    ax.legend(fontsize=8)


def main(out, title, files):
    runs = [json.load(open(p)) for p in files]
    memory = any("measured_peak_bytes" in r for v in runs for r in v["rows"])
    fig, axes = plt.subplots(2 if memory else 1, len(files), figsize=(5 * len(files), 4.6 * (2 if memory else 1)),
                             squeeze=False)
    for col, (path, v) in enumerate(zip(files, runs)):
        name = path.rsplit("/", 1)[-1].replace(".json", "")
        panel(axes[0][col], [r["measured_ms"] for r in v["rows"]], [r["predicted_ms"] for r in v["rows"]], "ms",
              f"{name}: latency\n{len(v['rows'])} archs, median |err| {100 * v['median_abs_rel_error']:.1f} %, "
              f"max {100 * v['max_abs_rel_error']:.1f} %")
        if memory:
            rows = [r for r in v["rows"] if "measured_peak_bytes" in r]
            panel(axes[1][col], [r["measured_peak_bytes"] / 1e9 for r in rows],
                  [r["predicted_peak_bytes"] / 1e9 for r in rows], "peak GB",
                  f"{name}: peak memory\nmedian |err| {100 * v['peak_memory_median_abs_rel_error']:.2f} %, "
                  f"max {100 * v['peak_memory_max_abs_rel_error']:.2f} %")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
