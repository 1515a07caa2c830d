"""A mock OpenAI upstream whose every ``POST /v1/embeddings`` answer is one large JSON body
(and so is ``GET`` of ``http_server.UNMETERED_PATH``, a path the guard does not meter).

    python -m benchmarks.embeddings_upstream --port 8101 --bytes 15600000

The body is built once at start (float vectors, as ``encoding_format: "float"`` returns them,
with a ``usage`` at the end) and sent in 64 KiB slices with its ``Content-Length``, so the
upstream itself holds one copy however many requests are in flight, and the proxies in front
of it see the body arrive as a real upstream sends it: in pieces, as fast as they read.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import AsyncIterator, Sequence

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from benchmarks.http_server import UNMETERED_PATH

SLICE_BYTES = 64 * 1024
DIMENSIONS = 1536
PROMPT_TOKENS = 8


def embeddings_body(size: int) -> bytes:
    """An embeddings list answer of about ``size`` bytes (at least one vector)."""
    rng = random.Random(1536)
    vector = [round(rng.uniform(-0.08, 0.08), 10) for _ in range(DIMENSIONS)]
    item = {"object": "embedding", "index": 0, "embedding": vector}
    per_item = len(orjson.dumps(item)) + 1
    count = max(1, size // per_item)
    data = [{**item, "index": index} for index in range(count)]
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
        }
    )


def create_app(body: bytes) -> Starlette:
    view = memoryview(body)

    async def slices() -> AsyncIterator[bytes]:
        for start in range(0, len(view), SLICE_BYTES):
            yield bytes(view[start : start + SLICE_BYTES])

    async def large_json(request: Request) -> Response:
        await request.body()
        return StreamingResponse(
            slices(),
            media_type="application/json",
            headers={"content-length": str(len(body))},
        )

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    return Starlette(
        routes=[
            Route("/v1/embeddings", large_json, methods=["POST"]),
            # The same bytes on a path the guard forwards without reading the answer.
            Route(UNMETERED_PATH, large_json, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bytes", type=int, default=15_600_000, help="the body's size")
    args = parser.parse_args(argv)
    app = create_app(embeddings_body(args.bytes))
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
