"""Fixtures for the observability tests: a real demo upstream on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.proxy.servers import serve

from budget_guard.proxy.demo_upstream import create_demo_upstream


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve(create_demo_upstream()) as url:
        yield url
