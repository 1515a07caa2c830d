"""A guarded OpenAI-compatible proxy, built by hand from budget-guard's parts.

This is the file to copy when you start your own: every part is a plain object you can swap
(a Redis store, JWT auth, your own limits provider, your own app instead of the proxy).

    # against OpenAI
    UPSTREAM_URL=https://api.openai.com OPENAI_API_KEY=sk-... uvicorn examples.proxy_app:app
    # against the built-in demo upstream (no key needed), started on port 9000 first:
    uvicorn --factory budget_guard.proxy.demo_upstream:create_demo_upstream --port 9000 &
    UPSTREAM_URL=http://127.0.0.1:9000 uvicorn examples.proxy_app:app

Then call it with the OpenAI SDK: ``OpenAI(base_url="http://127.0.0.1:8000/v1",
api_key="bg-example-key")``, and read the budget at ``GET /assistant/ai-chat/usage``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from budget_guard import (
    ApiKey,
    ApiKeyAuthenticator,
    BudgetGuardMiddleware,
    BudgetPolicy,
    GuardSettings,
    Ledger,
    MemoryStore,
    UpstreamProxy,
    Window,
)

COMPANY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")

# 1. The budget: 50,000 tokens per rolling 30 days for this company, 1M for everyone else.
window = Window(days=30)
policy = BudgetPolicy(window, default_token_limit=1_000_000, limits={COMPANY: 50_000})

# 2. Where usage lives. One process: the embedded store. Several workers or hosts:
#    store = RedisStore.from_url("redis://127.0.0.1:6379/0", window)
store = MemoryStore(window)
ledger = Ledger(store, policy)

# 3. Who is calling: API keys here; JwtAuthenticator and CallableAuthenticator (your own
#    session auth) plug in the same way.
authenticator = ApiKeyAuthenticator(
    [ApiKey(os.environ.get("BUDGET_GUARD_EXAMPLE_KEY", "bg-example-key"), COMPANY, name="example")]
)

# 4. The upstream: the client's key is never forwarded; the proxy sends its own.
proxy = UpstreamProxy(
    os.environ.get("UPSTREAM_URL", "https://api.openai.com"),
    api_key=os.environ.get("OPENAI_API_KEY"),
)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await proxy.aclose()  # the pooled upstream connections
    await ledger.aclose()  # the store (a Redis connection pool, say)


# 5. The app: the proxy on /v1/..., guarded. The middleware also serves
#    POST/GET /assistant/ai-chat/usage with the same ledger and authenticator.
app = Starlette(
    routes=[Route("/v1/{path:path}", proxy)],
    middleware=[
        Middleware(
            BudgetGuardMiddleware,
            ledger=ledger,
            authenticator=authenticator,
            settings=GuardSettings(paths=("/v1/",), strict=False, on_store_error="open"),
        )
    ],
    lifespan=lifespan,
)
