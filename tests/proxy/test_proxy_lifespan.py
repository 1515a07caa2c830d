"""The pooled client follows the ASGI lifespan, or the host app's when the proxy is mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from budget_guard.proxy import UpstreamProxy
from tests.proxy.servers import serve


def test_the_lifespan_opens_and_closes_the_client(demo_upstream_url: str, transport: str) -> None:
    proxy = UpstreamProxy(demo_upstream_url, transport=transport)
    with serve(proxy) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 200
        client = proxy._client
        assert client is not None
        assert httpx.get(f"{url}/v1/models").status_code == 200
        assert proxy._client is client  # one pooled client for every request
    assert proxy._client is None
    assert client.is_closed


def test_a_mounted_proxy_is_run_by_the_host_lifespan_and_sees_its_own_path(
    demo_upstream_url: str, transport: str
) -> None:
    proxy = UpstreamProxy(demo_upstream_url, transport=transport)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.startup()
        yield
        await proxy.aclose()

    host = Starlette(routes=[Mount("/llm", app=proxy)], lifespan=lifespan)
    with serve(host) as url:
        opened = proxy._client
        response = httpx.get(f"{url}/llm/v1/models")
    assert opened is not None
    assert response.status_code == 200
    assert response.json()["object"] == "list"
    assert opened.is_closed
