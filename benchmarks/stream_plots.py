"""The stream benchmark's picture: chunk latency p99 and CPU per chunk against open streams."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt

Steps = Mapping[int, Mapping[str, Any]]


def plot_streams(path: Path, results: Mapping[str, Steps], bound_ms: float) -> None:
    """Left: p99 chunk latency per step (log scale, the bound drawn); middle: server CPU per
    chunk; right: resident memory per open stream. One line per target."""
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    latency, cpu, memory = axes
    for index, (label, steps) in enumerate(results.items()):
        style = {"marker": "o", "label": label, "color": f"C{index}"}  # one colour per target
        ns = sorted(steps)
        latency.plot(ns, [steps[n]["latency_ms"]["99.0"] for n in ns], **style)
        cpu_values = [steps[n]["cpu_us_per_chunk"] for n in ns]
        if not all(math.isnan(v) for v in cpu_values):
            cpu.plot(ns, cpu_values, **style)
        rss = [steps[n]["rss_per_stream_bytes"] / 1024 for n in ns]
        if not all(math.isnan(v) for v in rss):
            memory.plot(ns, rss, **style)
    latency.axhline(bound_ms, color="gray", linestyle="--", linewidth=1)
    latency.set_yscale("log")
    latency.set_ylabel("chunk latency p99 (ms, log scale)")
    cpu.set_ylabel("server CPU per chunk (µs)")
    memory.set_ylabel("RSS per open stream (KiB)")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("concurrent streams (log scale)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("budget-guard: concurrent SSE streams through one worker")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
