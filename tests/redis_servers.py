"""Real redis-server processes for the tests: started on free loopback ports, never the
shared one on 6379, and always stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis needs <= 55535."""
    import random

    for _ in range(200):
        port = random.randint(20_000, 55_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def require_tool(name: str, package: str) -> str:
    """The program's path, or a skip: a failure under CI=true, where a missing service must
    not pass unnoticed as a skipped test."""
    binary = shutil.which(name)
    if binary is None:
        message = f"{name} is not on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI needs it (apt-get install {package})")
        pytest.skip(message)
    return binary


def require_redis_server() -> str:
    return require_tool("redis-server", "redis-server")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"redis-server on port {port} did not start")


@dataclass
class RedisServer:
    """One redis-server the tests own: they may stop, kill, restart or flush it."""

    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bg-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = require_redis_server()
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: the crash case, no chance to save anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RedisCluster:
    """A real 3-master Redis Cluster on loopback, made with ``redis-cli --cluster create``."""

    size: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def __enter__(self) -> RedisCluster:
        cli = require_tool("redis-cli", "redis-tools")
        for _ in range(self.size):
            node = RedisServer(
                port=free_cluster_port(),
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ),
            )
            self.nodes.append(node.start())
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        # Every node must say ok: the first one may while another still answers "CLUSTERDOWN"
        # to the first script sent to its slots (seen on a loaded machine).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(
                "cluster_state:ok"
                in subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                for node in self.nodes
            ):
                return self
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not become ready")

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.__exit__()
