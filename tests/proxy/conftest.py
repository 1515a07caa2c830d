"""Fixtures for proxy tests: a real demo upstream and a proxy per transport, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from budget_guard.proxy import UpstreamProxy
from budget_guard.proxy.demo_upstream import create_demo_upstream
from tests.proxy.servers import serve

UPSTREAM_KEY = "sk-upstream-secret"
CLIENT_KEY = "bg-client-key"


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every proxy behaviour is checked with both transports the setting offers."""
    return str(request.param)


@pytest.fixture(scope="module")
def demo_upstream_url() -> Iterator[str]:
    with serve(create_demo_upstream()) as url:
        yield url


@pytest.fixture
def demo_proxy_url(demo_upstream_url: str, transport: str) -> Iterator[str]:
    with serve(UpstreamProxy(demo_upstream_url, api_key=UPSTREAM_KEY, transport=transport)) as url:
        yield url
