"""Run budget-guard's benchmarks and print one table: figure, value, baseline, ratio, target,
PASS/FAIL.

    python benchmarks/run.py                      # everything, full size (minutes)
    python benchmarks/run.py --smoke              # tiny sizes, seconds: checks the scripts run
    python benchmarks/run.py --only stores memory # some groups
    python benchmarks/run.py --redis-url redis://127.0.0.1:6390/0

Every ``bench_*.py`` module next to this file is a group: it names itself with ``GROUP`` and
returns its figures from ``run(ctx: Context) -> list[Figure]``. Adding a group is adding a
module. Raw results go to ``benchmarks/results/`` (a timestamped file and ``latest.json``).
The exit status is 1 only when a module crashed: a missed target is a finding, not an error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    DEFAULT_RESULTS_DIR,
    Context,
    Figure,
    Unavailable,
    render_table,
    save_results,
)


def discover() -> dict[str, ModuleType]:
    """Every ``bench_*`` module of this package, by its ``GROUP`` name, in file-name order."""
    import benchmarks

    groups: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"benchmarks.{info.name}")
            groups[module.GROUP] = module
    return groups


def parse_args(argv: list[str], groups: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=groups, help=f"groups: {', '.join(groups)}"
    )
    parser.add_argument(
        "--redis-url",
        help="benchmark this Redis instead of starting a private redis-server "
        "(keys are namespaced and deleted afterwards; nothing is flushed)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where the JSON goes"
    )
    return parser.parse_args(argv)


def run_group(name: str, module: ModuleType, ctx: Context) -> tuple[list[Figure], bool]:
    """The group's figures, or one SKIP/ERROR row; the flag says whether it crashed."""
    print(f"- {name}: {module.__doc__.strip().splitlines()[0]}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        figures: list[Figure] = module.run(ctx)
    except Unavailable as exc:
        return [Figure.unavailable(f"{name} (all figures)", "SKIP", str(exc))], False
    except Exception as exc:
        traceback.print_exc()
        note = f"{type(exc).__name__}: {exc}"
        return [Figure.unavailable(f"{name} (all figures)", "ERROR", note)], True
    finally:
        print(f"  {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    for fig in figures:
        fig.group = name
    return figures, False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    groups = discover()
    args = parse_args(argv, list(groups))
    ctx = Context(smoke=args.smoke, results_dir=args.results_dir, redis_url_option=args.redis_url)
    selected = args.only or list(groups)
    figures: list[Figure] = []
    crashed = False
    started = time.perf_counter()
    try:
        for name in selected:
            group_figures, group_crashed = run_group(name, groups[name], ctx)
            figures.extend(group_figures)
            crashed |= group_crashed
    finally:
        ctx.close()
    elapsed = time.perf_counter() - started
    stamped, latest = save_results(figures, ctx, ["benchmarks/run.py", *argv], elapsed)
    print(render_table(figures))
    print(f"\nraw results: {stamped} (and {latest.name}); {elapsed:.0f} s")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
