"""Fixtures for the counting tests: a counter and the shipped encodings."""

from __future__ import annotations

import pytest
import tiktoken

from budget_guard.counting import TokenCounter
from budget_guard.encodings import load_shipped_encoding


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="session")
def o200k() -> tiktoken.Encoding:
    return load_shipped_encoding("o200k_base")


@pytest.fixture(scope="session")
def cl100k() -> tiktoken.Encoding:
    return load_shipped_encoding("cl100k_base")
