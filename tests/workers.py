"""Real ``celery -A batt_tasks worker`` processes for tests, and a ``batt-submit`` runner.

A :class:`Worker` is a subprocess with its environment pointed at a test's own Redis; it waits until
the worker says it is ready, exposes its pool processes (psutil), and stops by the signal the test
chooses. Nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psutil
from redis_proc import wait_for

from batt_tasks.scoring import TIMING_FIELDS

ROOT = Path(__file__).resolve().parent.parent


def batt_env(redis_url: str, db: int = 0, **extra: str) -> dict[str, str]:
    """The environment for a worker or producer talking to ``redis_url`` (broker db ``db``, backend ``db+1``)."""
    env = dict(os.environ)
    env.update(
        BATT_BROKER_URL=f"{redis_url}/{db}",
        BATT_RESULT_BACKEND=f"{redis_url}/{db + 1}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Worker:
    """A prefork worker subprocess; logs go to ``self.log``."""

    def __init__(
        self, env: dict[str, str], concurrency: int = 2, extra: list[str] | None = None, name: str = "w"
    ) -> None:
        self.env = env
        self.hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
        self.node = self.hostname.replace("%h", os.uname().nodename)
        fd, path = tempfile.mkstemp(prefix="batt-worker-", suffix=".log")
        os.close(fd)
        self.log = Path(path)
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
            self.hostname,
            "-l",
            "info",
            "--without-mingle",
            "--without-gossip",
            *(extra or []),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Worker:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: " ready." in self.text() or self.proc.poll() is not None, timeout, what=f"worker {self.node}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int | None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole tree if it does not go."""
        if self.proc is None:
            return None
        children = []
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
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the worker's main process and its pool (a crashed host)."""
        if self.proc is None:
            return
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        self.proc.kill()
        for c in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                c.kill()
        self.proc.wait(10)


def submit_cmd(*args: str) -> list[str]:
    """The command line of ``batt-submit`` with ``args``."""
    return [sys.executable, "-m", "producer.cli", *args]


def run_submit(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``batt-submit`` to completion."""
    return subprocess.run(submit_cmd(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run_dir(out: Path) -> Path:
    """The single run directory under ``out``."""
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, f"expected one run directory in {out}, found {dirs}"
    return dirs[0]


def task_lines(out: Path) -> dict[str, dict[str, Any]]:
    """``results.jsonl`` of the run under ``out``, by task id, without timing fields."""
    lines: dict[str, dict[str, Any]] = {}
    for raw in (run_dir(out) / "results.jsonl").read_text().splitlines():
        line = json.loads(raw)
        assert line["task_id"] not in lines, f"task {line['task_id']} written twice"
        for timing in TIMING_FIELDS:
            line.pop(timing, None)
        lines[line["task_id"]] = line
    return lines


def summary(out: Path) -> dict[str, Any]:
    return json.loads((run_dir(out) / "summary.json").read_text())
