"""Real parts for the limits and alerts tests: the app ``budget-guard serve`` builds, on real
uvicorn servers sharing one real Redis, and a real HTTP webhook receiver."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from budget_guard.app import build_app
from budget_guard.auth import ApiKey, ApiKeyAuthenticator, Role
from budget_guard.config import settings_from_mapping
from tests.proxy.servers import serve

COMPANY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
OTHER = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
USER_KEY = "bg-limits-user-key-0123456789"
ADMIN_KEY = "bg-limits-admin-key-0123456789"
SECRET = "whsec-test-0123456789abcdef"
USAGE = "/assistant/ai-chat/usage"
LIMITS = "/assistant/ai-chat/limits"


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def user() -> dict[str, str]:
    return {"Authorization": f"Bearer {USER_KEY}"}


def authenticator() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        [
            ApiKey(USER_KEY, COMPANY, name="customer"),
            ApiKey(ADMIN_KEY, OTHER, Role.ADMIN, name="ops-alice"),
        ]
    )


def config(redis_url: str, prefix: str, **tables: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "proxy": {"transport": "httpx"},
        "budget": {"default_token_limit": 1000},
        "store": {"url": redis_url, "prefix": prefix},
        **tables,
    }


@contextmanager
def servers(count: int, tables: dict[str, Any]) -> Iterator[list[str]]:
    """``count`` servers, each its own app, store client and alert queue (like workers or
    hosts), on the one store the tables name."""
    with ExitStack() as stack:
        urls = []
        for _ in range(count):
            app = build_app(
                settings_from_mapping(tables),
                upstream_url="http://127.0.0.1:9",
                authenticator=authenticator(),
            )
            urls.append(stack.enter_context(serve(app)))
        yield urls


@dataclass
class Receiver:
    """A webhook receiver that answers 503 to its first ``failures`` POSTs."""

    failures: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    async def hook(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return Response(status_code=503)
        self.received.append((dict(request.headers), await request.body()))
        self.arrived.set()
        return Response(status_code=204)


@contextmanager
def receiver(failures: int = 0) -> Iterator[tuple[str, Receiver]]:
    state = Receiver(failures)
    app = Starlette(routes=[Route("/hook", state.hook, methods=["POST"])])
    with serve(app) as url:
        yield f"{url}/hook", state
