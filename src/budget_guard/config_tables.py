"""Which tables and keys a config file may contain: every other name is a mistake.

A typo'd table used to be ignored, so ``[porxy]`` ran the real keys against the demo
upstream. Each settings module now declares its table here (one :func:`declare_table` call),
and :func:`check_document` walks the whole parsed file before anything else reads it: an
unknown table or key anywhere is one :class:`~budget_guard.budget.window.ConfigError` in one
wording, naming it and the nearest valid name::

    [porxy]: unknown table; did you mean [proxy]?
    proxy.upstrem_url: unknown key; did you mean upstream_url?

The settings modules call :func:`reject_unknown` themselves too, so a library user who builds
one table's settings directly gets the same message.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from budget_guard.budget.window import ConfigError

SETTINGS_MODULES = (
    "budget_guard.config",
    "budget_guard.server.settings",
    "budget_guard.proxy.settings",
    "budget_guard.guard.settings",
    "budget_guard.guard.routes",
    "budget_guard.endpoint.settings",
    "budget_guard.observability.settings",
    "budget_guard.auth.config",
    "budget_guard.alerts.settings",
)
"""The modules that declare tables. A new settings module adds itself here (one line)."""


@dataclass(frozen=True)
class TableSpec:
    keys: frozenset[str]
    """Every key the table may hold (sub-tables included, by their last name)."""
    open: bool = False
    """The keys are data, not names (company Guids, model names): the owner checks them."""
    array: bool = False
    """An array of tables (``[[guard.routes]]``): each entry holds :attr:`keys`."""


_TABLES: dict[str, TableSpec] = {}


def declare_table(
    name: str, keys: Iterable[str] = (), *, open: bool = False, array: bool = False
) -> None:
    """Declare the table ``name`` (dotted for a sub-table: ``"budget.limits"``).

    A sub-table's parent must list its last name among its keys too."""
    _TABLES[name] = TableSpec(frozenset(keys), open=open, array=array)


def known_tables() -> dict[str, TableSpec]:
    """Every declared table, after importing every settings module."""
    for module in SETTINGS_MODULES:
        importlib.import_module(module)
    return dict(_TABLES)


def reject_unknown(where: str, table: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise for the first key of ``table`` not in ``known``, naming the closest known one."""
    names = sorted(known)
    for key in table:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown key; {_suggest(key, names)}")


def check_document(data: Mapping[str, Any]) -> None:
    """Refuse any table or key no settings module declared, anywhere in the file."""
    tables = known_tables()
    top = sorted(name for name in tables if "." not in name)
    for name, value in data.items():
        if name not in tables:
            hint = _suggest(name, top, brackets=True)
            if isinstance(value, Mapping):
                raise ConfigError(f"[{name}]: unknown table; {hint}")
            raise ConfigError(f"{name}: unknown key (every setting belongs in a table); {hint}")
        _check(name, name, value, tables)


def _check(path: str, where: str, value: Any, tables: Mapping[str, TableSpec]) -> None:
    spec = tables[path]
    if spec.array:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be an array of tables ([[{path}]])")
        for index, entry in enumerate(value):
            _check_table(path, f"{where}[{index}]", entry, spec, tables)
        return
    _check_table(path, where, value, spec, tables)


def _check_table(
    path: str, where: str, value: Any, spec: TableSpec, tables: Mapping[str, TableSpec]
) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table ([{path}])")
    if spec.open:
        return
    for key, item in value.items():
        if key not in spec.keys:
            if isinstance(item, Mapping):
                subtables = sorted(n for n in spec.keys if f"{path}.{n}" in tables)
                hint = _suggest(key, [f"{path}.{n}" for n in subtables], brackets=True)
                raise ConfigError(f"[{where}.{key}]: unknown table; {hint}")
            raise ConfigError(f"{where}.{key}: unknown key; {_suggest(key, sorted(spec.keys))}")
        child = f"{path}.{key}"
        if child in tables:
            _check(child, f"{where}.{key}", item, tables)


def _suggest(name: str, candidates: list[str], *, brackets: bool = False) -> str:
    def shown(candidate: str) -> str:
        return f"[{candidate}]" if brackets else candidate

    if not candidates:
        return "this table takes no keys"
    import difflib  # only on the way to an error message

    last = {c.rsplit(".", 1)[-1]: c for c in candidates}
    close = difflib.get_close_matches(name, list(last), n=1, cutoff=0.6)
    if close:
        return f"did you mean {shown(last[close[0]])}?"
    return "expected one of " + ", ".join(shown(c) for c in candidates)
