"""Every python and toml snippet of docs/costs-and-weights.md runs (or loads) as written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from budget_guard.config import settings_from_mapping

DOC = Path(__file__).resolve().parent.parent / "docs" / "costs-and-weights.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(DOC.read_text("utf-8")) if lang == language]


@pytest.mark.parametrize("snippet", _snippets("python"))
def test_python_snippets_run(snippet: str) -> None:
    exec(compile(snippet, str(DOC), "exec"), {})


@pytest.mark.parametrize("snippet", _snippets("toml"))
def test_toml_snippets_load_as_settings(snippet: str) -> None:
    settings = settings_from_mapping(tomllib.loads(snippet))
    assert not settings.budget.weights.identity


def test_the_doc_has_snippets() -> None:
    assert _snippets("python") and _snippets("toml")
