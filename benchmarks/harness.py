"""What every benchmark module shares: figures and their targets, interleaved timing, the
context a run gives its modules (sizes, a private Redis), and the results file.

Absolute times drift on a shared 2-core machine; ratios against a baseline measured in the same
run, in alternating order, hold. So every comparison here runs its candidates round by round
(A B, then B A, ...) and reports the median of each, never one long run of A then one of B.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"

Comparison = Literal[">=", "<=", "=="]
Status = Literal["PASS", "FAIL", "report", "SKIP", "ERROR"]


class Unavailable(Exception):
    """A module cannot run here (no redis-server, say): its figures are shown as SKIP with
    this message instead of failing the whole run."""


# -- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a figure's ``ratio`` (against its baseline) or on its ``value`` itself."""

    of: Literal["ratio", "value"]
    op: Comparison
    bound: float
    unit: str = ""

    @classmethod
    def ratio(cls, op: Comparison, bound: float) -> Target:
        return cls("ratio", op, bound)

    @classmethod
    def value(cls, op: Comparison, bound: float, unit: str = "") -> Target:
        return cls("value", op, bound, unit)

    def met(self, value: float, ratio: float | None) -> bool:
        subject = value if self.of == "value" else ratio
        if subject is None or math.isnan(subject):
            return False
        if self.op == ">=":
            return subject >= self.bound
        if self.op == "<=":
            return subject <= self.bound
        return math.isclose(subject, self.bound, rel_tol=1e-9)

    def describe(self) -> str:
        if self.of == "ratio":
            return f"{self.op} {self.bound:g}x"
        return f"{self.op} {format_quantity(self.bound, self.unit)}"


@dataclass(slots=True)
class Figure:
    """One row of the table. ``ratio`` defaults to ``value / baseline``; ``detail`` holds the
    raw samples and anything else worth keeping in the JSON (it is not printed)."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: Target | None = None
    ratio: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    note: str = ""
    forced_status: Status | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.value / self.baseline

    @classmethod
    def unavailable(cls, name: str, status: Status, note: str) -> Figure:
        return cls(name, math.nan, "", note=note, forced_status=status)

    @property
    def status(self) -> Status:
        if self.forced_status is not None:
            return self.forced_status
        if self.target is None:
            return "report"
        return "PASS" if self.target.met(self.value, self.ratio) else "FAIL"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("forced_status")
        data["target"] = None if self.target is None else self.target.describe()
        data["status"] = self.status
        return _finite(data)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity; strict readers reject Python's extensions."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def format_quantity(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "B" and value >= 1024:
        return f"{value / 1024:,.2f} KiB"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def render_table(figures: list[Figure]) -> str:
    headers = ("figure", "value", "baseline", "ratio", "target", "result")
    rows = []
    for fig in figures:
        baseline = format_quantity(fig.baseline, fig.unit)
        if fig.baseline_label and fig.baseline is not None:
            baseline = f"{baseline} ({fig.baseline_label})"
        rows.append(
            (
                fig.name,
                format_quantity(fig.value, fig.unit),
                baseline,
                "-" if fig.ratio is None or math.isnan(fig.ratio) else f"{fig.ratio:.3f}x",
                "-" if fig.target is None else fig.target.describe(),
                fig.status if not fig.note else f"{fig.status}: {fig.note}",
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


# -- timing ----------------------------------------------------------------------------------


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def _round_order(names: list[str], index: int) -> list[str]:
    """A B, B A, A B ...: a drift during the run hurts every candidate alike."""
    return names if index % 2 == 0 else names[::-1]


def interleave(
    candidates: Mapping[str, Callable[[], float]], rounds: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each candidate once per round, alternating the order; ``warmup`` rounds are
    discarded. Each call returns one sample (a rate or a time)."""
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        for name in _round_order(names, index):
            gc.collect()
            sample = candidates[name]()
            if index >= warmup:
                samples[name].append(sample)
    return samples


async def ainterleave(
    candidates: Mapping[str, Callable[[], Awaitable[float]]], rounds: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """:func:`interleave` for candidates that must run on the event loop."""
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        for name in _round_order(names, index):
            gc.collect()
            sample = await candidates[name]()
            if index >= warmup:
                samples[name].append(sample)
    return samples


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean wall time of one call over ``calls`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


async def concurrent_rate(
    op: Callable[[int, int], Awaitable[object]], *, concurrency: int, per_task: int
) -> float:
    """Operations per second with ``concurrency`` tasks each awaiting ``per_task`` calls of
    ``op(task, i)`` back to back: a fixed number of callers in flight, as a worker has."""

    async def worker(task: int) -> None:
        for i in range(per_task):
            await op(task, i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(concurrency)))
    return concurrency * per_task / (time.perf_counter() - start)


def comparison(
    name: str,
    samples: dict[str, list[float]],
    *,
    measured: str,
    baseline: str,
    unit: str,
    target: Target | None,
    baseline_label: str = "",
    detail: dict[str, Any] | None = None,
) -> Figure:
    """A figure from interleaved samples: medians of both sides, their ratio, and the raw
    samples and per-round ratios kept for the JSON."""
    value, base = median(samples[measured]), median(samples[baseline])
    per_round = [m / b for m, b in zip(samples[measured], samples[baseline], strict=True) if b]
    return Figure(
        name,
        value,
        unit,
        baseline=base,
        baseline_label=baseline_label or baseline,
        target=target,
        detail={
            "samples": samples,
            "per_round_ratio": per_round,
            "rounds": len(samples[measured]),
            **(detail or {}),
        },
    )


# -- the run's context -----------------------------------------------------------------------


@dataclass
class Context:
    """What run.py hands each module: the size to run at, where artifacts go, and a Redis
    that is safe to benchmark against."""

    smoke: bool
    results_dir: Path
    redis_url_option: str | None = None
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    meta: dict[str, Any] = field(default_factory=dict)
    _stack: ExitStack = field(default_factory=ExitStack)
    _redis_url: str | None = None

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def redis_url(self) -> str:
        """``--redis-url`` if given, else a redis-server of our own on a free loopback port,
        started on first use and stopped when the run ends (never the shared 6379)."""
        if self._redis_url is None:
            if self.redis_url_option:
                self._redis_url = self.redis_url_option
            else:
                if shutil.which("redis-server") is None:
                    raise Unavailable("redis-server is not on PATH (or pass --redis-url)")
                if str(REPO_ROOT) not in sys.path:
                    sys.path.insert(0, str(REPO_ROOT))
                from tests.redis_servers import RedisServer

                server = self._stack.enter_context(RedisServer())
                self._redis_url = server.url
                self.meta["redis"] = "own redis-server on a free port"
        return self._redis_url

    @property
    def key_prefix(self) -> str:
        """Every key a module writes starts with this, so it can delete exactly its own keys
        afterwards (a benchmark never flushes a database)."""
        return f"budget-guard-bench:{self.stamp}:{os.getpid()}:"

    def close(self) -> None:
        self._stack.close()


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def save_results(
    figures: list[Figure], ctx: Context, argv: list[str], elapsed: float
) -> tuple[Path, Path]:
    """Write the run as JSON: a timestamped file and ``latest.json`` (smoke runs write
    ``*-smoke.json`` and ``latest-smoke.json`` so they never overwrite real figures)."""
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-smoke" if ctx.smoke else ""
    document = {
        "started": ctx.stamp,
        "command": " ".join(["python", *argv]),
        "smoke": ctx.smoke,
        "elapsed_seconds": round(elapsed, 2),
        "machine": machine(),
        "meta": ctx.meta,
        "figures": [fig.as_json() for fig in figures],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    stamped = ctx.results_dir / f"{ctx.stamp}{suffix}.json"
    latest = ctx.results_dir / f"latest{suffix}.json"
    stamped.write_text(text, encoding="utf-8")
    latest.write_text(text, encoding="utf-8")
    return stamped, latest
