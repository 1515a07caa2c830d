"""Run the real ``budget-guard`` command in a subprocess and wait until it serves.

The one helper for every test that needs the command itself (CLI, reliability, security):
output goes to a file (a pipe nobody drains would block a chatty server), the process runs in
its own session so workers die with it, and it is always stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.redis_servers import free_port


def command() -> list[str]:
    exe = shutil.which("budget-guard", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "budget_guard.cli"]


@dataclass
class Running:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    banner: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def status(self, field: str) -> int:
        """A ``/proc/<pid>/status`` memory field in KiB (``VmHWM`` is the peak resident set)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


def run_once(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str]:
    """Run the command to completion (for the ones that must refuse to start)."""
    done = subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout + done.stderr


def clean_environment() -> dict[str, str]:
    """The test's environment without BUDGET_GUARD_* overrides: the config file decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BUDGET_GUARD_")}


@contextmanager
def serving(
    *args: str,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    ready_path: str | None = None,
    timeout: float = 40,
) -> Iterator[Running]:
    """``budget-guard serve --port <free> <args>`` until the block ends.

    ``env`` replaces the environment when given (default: this one); ``ready_path`` waits
    for that path to answer 200 rather than for the port to accept (with several workers
    the port accepts before every worker serves).
    """
    port = free_port()
    scratch = None
    if log_path is None:
        scratch = tempfile.TemporaryDirectory(prefix="bg-serve-")
        log_path = Path(scratch.name) / "serve.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*command(), "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
            start_new_session=True,
        )
    running = Running(f"http://127.0.0.1:{port}", port, proc, log_path, [])
    try:
        _wait(running, ready_path, timeout)
        # The banner is printed before the socket listens.
        running.banner = running.log().splitlines()
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if scratch is not None:
            scratch.cleanup()


def _wait(running: Running, ready_path: str | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running.alive:
            raise RuntimeError(f"budget-guard exited:\n{running.log()}")
        try:
            with socket.create_connection(("127.0.0.1", running.port), timeout=0.5) as sock:
                if ready_path is None:
                    return
                request = f"GET {ready_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                sock.sendall(request.encode())
                sock.settimeout(2)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"budget-guard did not become ready:\n{running.log()}")
