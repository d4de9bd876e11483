#!/usr/bin/env python3
"""Scatter plot of predicted vs measured latency from `jointnas profile --validate-out` files.
usage: python3 scripts/plot_profile_validation.py OUT.png TITLE FILE [FILE ...]
Needs matplotlib (`pip install matplotlib`); documentation tooling only, not used by CI or the demo."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(out, title, files):
    fig, axes = plt.subplots(1, len(files), figsize=(5 * len(files), 4.6))
    axes = axes if len(files) > 1 else [axes]
    for ax, path in zip(axes, files):
        v = json.load(open(path))
        pred = [r["predicted_ms"] for r in v["rows"]]
        meas = [r["measured_ms"] for r in v["rows"]]
        lo, hi = min(pred + meas) * 0.97, max(pred + meas) * 1.03
        ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="prediction = measurement")
        ax.fill_between([lo, hi], [lo * 0.95, hi * 0.95], [lo * 1.05, hi * 1.05], color="gray", alpha=0.15,
                        label="±5 %")
        ax.scatter(meas, pred, s=18)
        name = path.rsplit("/", 1)[-1].replace(".json", "")
        ax.set_title(f"{name}\n{len(pred)} archs, median |err| {100 * v['median_abs_rel_error']:.1f} %, "
                     f"max {100 * v['max_abs_rel_error']:.1f} %", fontsize=9)
        ax.set_xlabel("measured ms")
        ax.set_ylabel("predicted ms")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
