"""Mounted in a FastAPI app, the middleware leaves the host's paths alone: FastAPI's own
``/openapi.json`` and ``/docs`` stay the app's, and budget-guard's document lives under the
usage endpoint's own path."""

from __future__ import annotations

import httpx
from endpoint_support import PATH, USER_A_KEY, api_keys, bearer
from fastapi import FastAPI
from tests.proxy.servers import serve

from budget_guard import BudgetGuardMiddleware, BudgetPolicy, Ledger, MemoryStore, Window


def _host_app() -> FastAPI:
    app = FastAPI(title="Host app")

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    window = Window(days=30)
    ledger = Ledger(MemoryStore(window), BudgetPolicy(window, default_token_limit=1000))
    app.add_middleware(BudgetGuardMiddleware, ledger=ledger, authenticator=api_keys())
    return app


def test_fastapi_keeps_its_openapi_and_docs() -> None:
    with serve(_host_app()) as url:
        document = httpx.get(url + "/openapi.json").json()
        assert document["info"]["title"] == "Host app"
        assert "/hello" in document["paths"]
        docs = httpx.get(url + "/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text

        ours = httpx.get(url + PATH + "/openapi.json").json()
        assert PATH in ours["paths"] and "/hello" not in ours["paths"]

        assert httpx.get(url + "/hello").json() == {"hello": "world"}
        usage = httpx.post(url + PATH, json={"tokensUsed": 5}, headers=bearer(USER_A_KEY))
        assert usage.json()["tokensUsed"] == 5
