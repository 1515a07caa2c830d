"""The HTTP benchmarks' pictures: latency distributions per server, and time to first byte."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib import ticker

Curve = Mapping[float, float]  # percentile -> milliseconds


def plot_latency(path: Path, panels: Mapping[str, Mapping[str, Curve]], note: str) -> None:
    """One panel per load level: each server's latency percentiles (the median over rounds of
    each percentile) as a cumulative distribution."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for label, curve in curves.items():
            points = sorted(curve.items())
            axis.plot([ms for _, ms in points], [p for p, _ in points], label=label, linewidth=1.6)
        axis.set_xscale("log")
        # Plain numbers at 1-2-5 steps: log axes spanning less than a decade otherwise label
        # every minor tick in scientific notation, on top of each other.
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("latency per request (ms, log scale)")
        axis.set_ylabel("percentile")
        axis.set_ylim(0, 100)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.suptitle("budget-guard: latency through the proxy, with and without the guard")
    figure.text(0.5, 0.005, note, ha="center", fontsize=8, color="dimgray")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_ttfb(path: Path, samples: Mapping[str, list[float]], note: str) -> None:
    """Histograms of time to first byte of a streamed answer, one per server."""
    figure, axis = plt.subplots(figsize=(7.2, 4.2))
    everything = sorted(x for values in samples.values() for x in values)
    high = everything[int(0.99 * (len(everything) - 1))] if everything else 1.0
    low = everything[0] if everything else 0.0
    bins = [low + (high - low) * i / 60 for i in range(61)]
    for label, values in samples.items():
        axis.hist([min(v, high) for v in values], bins=bins, alpha=0.5, label=label)
    axis.set_xlabel("time to first byte of the streamed answer (ms; the top 1% folded in)")
    axis.set_ylabel("requests")
    axis.set_title("budget-guard: time to first byte, streamed chat completion")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.text(0.5, 0.005, note, ha="center", fontsize=8, color="dimgray")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
