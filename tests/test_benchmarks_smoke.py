"""The benchmark suite must keep running: CI runs it at smoke size (tiny, seconds) and checks
that it completes and prints its table. Speed is never asserted here; that is what the full
run of ``benchmarks/run.py`` is for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_suite_runs_at_smoke_size_and_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )

    assert done.returncode == 0, done.stderr
    header = "| figure"
    assert header in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert rows, done.stdout
    assert not [row for row in rows if "ERROR" in row], done.stdout

    saved = json.loads((tmp_path / "latest-smoke.json").read_text(encoding="utf-8"))
    assert saved["smoke"] is True
    assert len(saved["figures"]) == len(rows)
    groups = {figure["group"] for figure in saved["figures"]}
    groups_expected = {"stores", "footprint", "history", "counting", "counting-offload", "metering"}
    assert groups_expected <= groups
    assert {"streams", "redis-client", "prompt-sizes"} <= groups
    assert not (tmp_path / "latest.json").exists()  # a smoke run never poses as real figures
