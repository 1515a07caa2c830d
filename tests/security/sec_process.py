"""The real ``budget-guard serve`` command in a subprocess, for the tests that measure the
server process itself (its peak memory) or read what it logs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.cli.processes import Running, serving


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML for the config shapes these tests write (tables, one nested table level, arrays
    of tables, scalars and lists of strings)."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        raise TypeError(type(item))

    lines: list[str] = []

    def table(name: str, body: Mapping[str, Any]) -> None:
        scalars = {
            k: v
            for k, v in body.items()
            if not isinstance(v, Mapping | list)
            or (isinstance(v, list) and not any(isinstance(i, Mapping) for i in v))
        }
        lines.append(f"[{name}]")
        lines.extend(f'"{k}" = {value(v)}' for k, v in scalars.items())
        for key, item in body.items():
            if isinstance(item, Mapping):
                table(f"{name}.{key}", item)
            elif isinstance(item, list) and any(isinstance(i, Mapping) for i in item):
                for entry in item:
                    lines.append(f"[[{name}.{key}]]")
                    lines.extend(f'"{k}" = {value(v)}' for k, v in entry.items())

    for name, body in data.items():
        table(name, body)
    return "\n".join(lines) + "\n"


Process = Running


@contextmanager
def budget_guard_serve(
    config: Mapping[str, Any], directory: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[Process]:
    """``budget-guard serve --config <file> --demo``, its output in ``serve.log``."""
    config_path = directory / "budget-guard.toml"
    config_path.write_text(toml_text(config))
    with serving(
        "--config",
        str(config_path),
        "--demo",
        *args,
        env={**os.environ, **(env or {})},
        log_path=directory / "serve.log",
    ) as process:
        yield process
