"""Clients that trickle a body or stop sending mid-body: the server answers 408 in the path's
error shape and hangs up once ``body_timeout_seconds`` has passed, instead of holding the
connection for as long as the client likes (the HTTP server itself would wait forever)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.sec_support import (
    BODY_TIMEOUT,
    CHAT,
    ENDPOINT,
    KEY_A,
    Target,
    assert_refusal,
    bearer,
    guarded_server,
    raw_exchange,
    request_head,
    trickle_exchange,
)

PATHS = [CHAT, ENDPOINT]
BOUND = BODY_TIMEOUT + 8
"""How long the client waits for the answer: the timeout plus a margin for a slow machine.
A server that never answers fails the test instead of hanging it."""


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with guarded_server() as served:
        yield served


def _headers(**extra: str) -> dict[str, str]:
    return {**bearer(KEY_A), "Content-Type": "application/json", **extra}


def _assert_timed_out(path: str, status: int | None, headers: dict[str, str], body: bytes) -> None:
    assert status == 408, (path, status, body)
    assert_refusal(path, 408, headers, body)
    assert headers.get("connection") == "close"


@pytest.mark.parametrize("path", PATHS)
def test_a_body_that_stops_halfway_is_answered_408_and_dropped(target: Target, path: str) -> None:
    head = request_head("POST", path, target.port, _headers(), body_length=400)
    answer = raw_exchange(target.port, head, [b'{"tokensUsed": 5, "pad": "'], timeout=BOUND)
    _assert_timed_out(path, answer.status, answer.headers, answer.body)
    assert answer.closed


@pytest.mark.parametrize("path", PATHS)
def test_a_chunked_body_that_never_ends_is_answered_408_and_dropped(
    target: Target, path: str
) -> None:
    head = request_head("POST", path, target.port, _headers(**{"Transfer-Encoding": "chunked"}))
    answer = raw_exchange(target.port, head, [b'5\r\n{"tok\r\n'], timeout=BOUND)
    _assert_timed_out(path, answer.status, answer.headers, answer.body)
    assert answer.closed


@pytest.mark.parametrize("path", PATHS)
def test_a_trickled_body_is_cut_off_at_the_deadline(target: Target, path: str) -> None:
    """One byte every 100 ms keeps every per-read timeout happy; the deadline is for the whole
    body, so the trickle is still cut off."""
    body = b'{"tokensUsed": 5, "pad": "' + b"x" * 400 + b'"}'
    head = request_head("POST", path, target.port, _headers(), body_length=len(body))
    answer, sent = trickle_exchange(target.port, head, body, interval=0.1, timeout=BOUND)
    _assert_timed_out(path, answer.status, answer.headers, answer.body)
    assert sent < len(body)
    assert answer.closed


def test_the_server_still_serves_after_the_stalled_clients(target: Target) -> None:
    answer = httpx.get(target.url + ENDPOINT, headers=bearer(KEY_A), timeout=10)
    assert answer.status_code == 200
    chat = httpx.post(
        target.url + CHAT,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(KEY_A),
        timeout=10,
    )
    assert chat.status_code == 200
