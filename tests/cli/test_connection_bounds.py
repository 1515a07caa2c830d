"""Idle, trickling and surplus connections against the real ``budget-guard serve --demo``.

The issue this answers: 20,000 idle sockets exhausted the descriptors, ``/healthz`` timed out
and asyncio logged every failing accept(). Short timeouts come from a config file so that the
run stays short; the connection cap is the default (2,048) in the flood test.
"""

from __future__ import annotations

import resource
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from .processes import Running, clean_environment, serving

HEADER_TIMEOUT = 2.0
KEEP_ALIVE = 1.0
IDLE_SOCKETS = 3_000
HEALTHZ_BOUND = 2.0
"""Generous: a loaded CI machine, while the server accepts thousands of sockets."""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "bounds.toml"
    path.write_text(
        f"[server]\nheader_timeout_seconds = {HEADER_TIMEOUT}\n"
        f"keep_alive_seconds = {KEEP_ALIVE}\n{extra}"
    )
    return path


@contextmanager
def _demo(tmp_path: Path, extra: str = "") -> Iterator[Running]:
    config = _config(tmp_path, extra)
    with serving("--demo", "--config", str(config), env=clean_environment()) as running:
        yield running


def _descriptors(needed: int) -> None:
    """Raise this process's soft descriptor limit for the sockets it opens, or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _healthz(port: int) -> float:
    """Seconds a fresh connection takes to get ``/healthz`` answered with 200."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=HEALTHZ_BOUND) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200"), "healthz did not answer 200"
    return time.monotonic() - started


def _closed(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has closed (readable with nothing sent = EOF)."""
    poll = select.poll()
    for sock in sockets:
        poll.register(sock, select.POLLIN)
    return len(poll.poll(0))


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``sock`` (EOF or reset), None if it stays open."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def _bound_lines(running: Running) -> list[str]:
    return [line for line in running.log().splitlines() if "connection bound" in line]


def test_thousands_of_idle_sockets_leave_healthz_answering_and_are_closed(
    tmp_path: Path,
) -> None:
    _descriptors(IDLE_SOCKETS + 512)
    with _demo(tmp_path) as running, ExitStack() as stack:
        opened_at = time.monotonic()
        idle = []
        for _ in range(IDLE_SOCKETS):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", running.port)))
            idle.append(sock)
        # A connection accepted in the same burst as the flood cannot be told from it before
        # its first read (it may get a 503); once the burst is taken in, a new client
        # displaces the longest-waiting idle socket and is served at once.
        time.sleep(0.3)
        assert _healthz(running.port) < HEALTHZ_BOUND
        assert time.monotonic() - opened_at < HEADER_TIMEOUT, "too slow to test the timeout"
        # Still inside the header timeout: at most the cap (2,048) held open.
        assert IDLE_SOCKETS - 2048 <= _closed(idle) < IDLE_SOCKETS // 2
        deadline = opened_at + HEADER_TIMEOUT + 5
        while _closed(idle) < IDLE_SOCKETS and time.monotonic() < deadline:
            assert _healthz(running.port) < HEALTHZ_BOUND
            time.sleep(0.2)
        assert _closed(idle) == IDLE_SOCKETS, "idle sockets outlived the header timeout"
        assert time.monotonic() - opened_at > HEADER_TIMEOUT * 0.9
        assert _healthz(running.port) < HEALTHZ_BOUND
        assert running.alive
        log = running.log()
        assert "out of system resource" not in log and "Traceback" not in log
        lines = _bound_lines(running)
        # One line at once, the rest counted into at most one more per 10 s. The first says
        # idle sockets were displaced or, when the 2,049th came in the flood's own burst
        # (before any socket could be told idle, as above), that it was refused with a 503;
        # that /healthz was answered all along is the displacing seen from outside.
        assert 1 <= len(lines) <= 2, lines
        assert "still waiting for a request head" in lines[0] or "with a 503" in lines[0]


def test_a_trickled_request_head_is_cut_off_at_the_header_timeout(tmp_path: Path) -> None:
    with _demo(tmp_path) as running:
        sock = socket.create_connection(("127.0.0.1", running.port))
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed_after = None
        try:
            for i in range(int(HEADER_TIMEOUT * 4 / 0.1)):  # bounded: 4 header timeouts
                sock.sendall(f"x-trickle-{i}: y\r\n".encode())
                if _closed([sock]):
                    closed_after = time.monotonic() - started
                    break
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
        finally:
            sock.close()
        assert closed_after is not None, "a trickled head kept the connection open"
        assert HEADER_TIMEOUT * 0.9 <= closed_after <= HEADER_TIMEOUT + 1.5


def test_a_kept_alive_connection_is_closed_when_idle(tmp_path: Path) -> None:
    with _demo(tmp_path) as running:
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            closed = _closed_within(sock, KEEP_ALIVE + 3)
        assert closed is not None and closed >= KEEP_ALIVE * 0.8


def test_at_the_bound_with_every_connection_busy_new_ones_get_a_503(tmp_path: Path) -> None:
    bound = 16
    with _demo(tmp_path, f"max_connections = {bound}\n") as running, ExitStack() as stack:
        key = next(line for line in running.banner if "demo key:" in line).split()[2]
        # One whole request first: the first one loads the token encoding, which holds the
        # event loop for a while on a loaded machine.
        warm = httpx.post(
            f"{running.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=30,
        )
        assert warm.status_code == 200, warm.text
        busy = []
        for _ in range(bound):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", running.port)))
            # A complete head and a body that never completes: busy until the guard's body
            # deadline (60 s), far beyond this test.
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {key}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            busy.append(sock)
        time.sleep(0.5)
        refused = 0
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", running.port), timeout=2) as sock:
                answer = sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 503"), answer
                assert b"retry-after: 1" in answer
                refused += 1
        assert _closed(busy) == 0, "a busy connection was closed to make room"
        lines = _bound_lines(running)
        assert len(lines) == 1, lines
        assert "refused 1 new connection" in lines[0]
        for sock in busy:
            sock.close()
        time.sleep(0.3)
        assert _healthz(running.port) < HEALTHZ_BOUND
        assert refused == 50 and running.alive
