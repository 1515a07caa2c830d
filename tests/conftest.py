"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.redis_servers import RedisServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the tests: ``$REDIS_URL`` if set, else a redis-server the session
    starts on a free port (so tests may flush it without touching anyone else's)."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with RedisServer() as server:
        yield server.url
