"""The worker guard in real prefork workers against a real redis-server (issue 4).

- Thread exhaustion for real: the pool process's address-space limit (RLIMIT_AS, set from outside
  with prlimit) leaves no room for a thread stack, so the batt's ``Thread.start()`` raises
  ``RuntimeError: can't start new thread``; the sample is retried with growing delays and succeeds
  once the limit is lifted, or ends as ``thread exhaustion after N retries``. Another RuntimeError
  is not retried.
- Memory pressure for real: a helper process allocates and touches memory until available memory
  is below the worker's threshold; the ``--autoscale=3,1`` worker's cap falls to 1 (``inspect guard``
  says why), and returns after the helper frees it and the recovery period passes. Every sample of
  the concurrent run completes.
- Critical pressure: samples that start under it are deferred with a retry; none lost, none run twice.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery import Celery
from redis_proc import wait_for
from workers import ROOT, Worker, batt_env, submit_cmd, task_lines

from batt_tasks.control import NO_AUTOSCALE_NOTICE
from batt_tasks.sample import carried_result

pytestmark = pytest.mark.integration

BATTS = ROOT / "tests" / "batts"
THREADS_BATT = str(BATTS / "guard_threads.py")
SLEEP_BATT = str(BATTS / "dist_sleep.py")
TASK = "batt.score_sample"
MB = 1024 * 1024
IDS = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b", "045e512c", "0520fde7", "05269061", "05f2a901", "06df4c85"]

# every guard level off: a test turns on only the one it exercises
GUARD_OFF = {
    "BATT_GUARD_MIN_AVAILABLE_MB": "0",
    "BATT_GUARD_MIN_AVAILABLE_PCT": "0",
    "BATT_GUARD_MAX_THREADS": "0",
    "BATT_GUARD_MIN_THREAD_HEADROOM": "0",
    "BATT_GUARD_CRITICAL_AVAILABLE_MB": "0",
    "BATT_GUARD_CRITICAL_AVAILABLE_PCT": "0",
    "BATT_GUARD_CRITICAL_THREAD_HEADROOM": "0",
}


def client(redis_url: str) -> Celery:
    app = Celery("guard-test-client", broker=f"{redis_url}/0", backend=f"{redis_url}/1", set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return app


def message(task_id: str, batt: str = THREADS_BATT) -> dict[str, Any]:
    """A one-sample message without expected output (so the batt runs once per attempt), signed as
    batt-submit signs it (the test's workers share this session's per-user key file)."""
    from batt_tasks.config import settings
    from batt_tasks.signing import resolve_keys, sign

    m = {
        "run_id": "guard-test",
        "task_id": task_id,
        "kind": "test",
        "index": 0,
        "S": [[[[1, 2]], [[1, 2]]]],
        "input": [[1, 2], [3, 4]],
        "expected": None,
        "batt": batt,
        "time_limit": 120,
    }
    m["sig"] = sign(m, resolve_keys(settings()))
    return m


def send(app: Celery, task_id: str) -> Any:
    return app.send_task(TASK, args=[message(task_id)], queue="batt", soft_time_limit=120, time_limit=125)


def outcome(result: Any, timeout: float) -> dict[str, Any]:
    """A sample's result: returned (ok), or carried by the task's SampleFailed (error, timeout)."""
    value = result.get(timeout=timeout, propagate=False)
    return carried_result(value) or value


def attempts(log: Path) -> list[dict[str, Any]]:
    """The batt's attempt log; a line still being written (no newline yet) is not counted."""
    if not log.exists():
        return []
    complete = log.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def warm_up(app: Celery) -> None:
    """Load the batt in the pool process before its limit is set, without starting a thread.

    (A thread that ran leaves its stack in glibc's cache, and the next thread would reuse it.)
    """
    assert outcome(send(app, "boom-warm-up"), 60)["error"] == "RuntimeError: the batt broke"


def pool_pid(worker: Worker) -> int:
    wait_for(lambda: len(worker.pool_pids()) == 1, 30, what="one pool process")
    return worker.pool_pids()[0]


def starve_threads(pid: int) -> None:
    """Cap the process's address space just above its current size: a thread stack (8 MB) no longer fits."""
    proc = psutil.Process(pid)
    proc.rlimit(psutil.RLIMIT_AS, (proc.memory_info().vms + 6 * MB, psutil.RLIM_INFINITY))


def lift(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).rlimit(psutil.RLIMIT_AS, (psutil.RLIM_INFINITY, psutil.RLIM_INFINITY))


@pytest.fixture
def guard_app_installed() -> None:
    """The integration tests need the guard wired into the app and the task (batt_tasks/celery.py, tasks.py)."""
    code = (
        "from batt_tasks.celery import app; from batt_tasks.tasks import score_sample as t; "
        "print(app.conf.worker_autoscaler, getattr(t, 'autoretry_for', ()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "batt_tasks.autoscaler:GuardedAutoscaler" in out.stdout, out.stdout + out.stderr
    assert "ThreadStartError" in out.stdout, "score_sample must declare autoretry_for=(guard.ThreadStartError,)"


@pytest.fixture
def thread_worker(redis_server: Any, tmp_path: Path, guard_app_installed: None) -> Iterator[tuple[Worker, Path]]:
    log = tmp_path / "attempts.jsonl"
    env = batt_env(
        redis_server.url,
        BATT_GUARD_TEST_LOG=str(log),
        BATT_RETRY_JITTER="0",
        BATT_RETRY_MAX="3",
        BATT_RETRY_BACKOFF_MAX="60",
        **GUARD_OFF,
    )
    w = Worker(env, concurrency=1, name="guard-threads").start()
    try:
        yield w, log
    finally:
        w.stop()


def test_thread_exhaustion_is_retried_with_backoff_then_succeeds(redis_server: Any, thread_worker: Any) -> None:
    worker, log = thread_worker
    app = client(redis_server.url)
    warm_up(app)
    pid = pool_pid(worker)
    starve_threads(pid)
    try:
        result = send(app, "starved")
        wait_for(lambda: len(attempts(log)) >= 4, 60, what="three failed attempts")  # warm-up + 3
    finally:
        lift(pid)
    done = result.get(timeout=60)
    assert done["status"] == "ok" and done["candidates"] == 1, done
    runs = [a for a in attempts(log) if a["task_id"] == "starved"]
    assert [a["outcome"] for a in runs] == ["fail: can't start new thread"] * 3 + ["ok"]
    assert {a["pid"] for a in runs} == {pid}
    delays = [b["time"] - a["time"] for a, b in zip(runs, runs[1:], strict=False)]
    for delay, countdown in zip(delays, (1, 2, 4), strict=True):  # retry_backoff without jitter: 1, 2, 4 s
        assert countdown - 0.1 <= delay <= countdown + 2.0, delays
    assert worker.text().count("Retry in") == 3


def test_thread_exhaustion_beyond_retries_is_the_samples_error(redis_server: Any, thread_worker: Any) -> None:
    worker, log = thread_worker
    app = client(redis_server.url)
    warm_up(app)
    pid = pool_pid(worker)
    starve_threads(pid)
    try:
        done = outcome(send(app, "never"), 90)
    finally:
        lift(pid)
    assert done["status"] == "error" and done["error"] == "thread exhaustion after 3 retries", done
    runs = [a for a in attempts(log) if a["task_id"] == "never"]
    assert [a["outcome"] for a in runs] == ["fail: can't start new thread"] * 4  # the first try + 3 retries
    # the worker keeps serving once threads can start again
    assert send(app, "after").get(timeout=60)["status"] == "ok"


def test_other_runtime_error_is_not_retried(redis_server: Any, thread_worker: Any) -> None:
    worker, log = thread_worker
    done = outcome(send(client(redis_server.url), "boom-1"), 60)
    assert done["status"] == "error" and done["error"] == "RuntimeError: the batt broke", done
    assert [a["outcome"] for a in attempts(log)] == ["boom"]
    assert "Retry in" not in worker.text()


def inspect(app: Celery, node: str, command: str) -> dict[str, Any]:
    replies = app.control.inspect(destination=[node], timeout=3)._request(command) or {}
    return replies.get(node) or {}


class MemoryHog:
    """A helper process that allocates and touches ``mb`` MB, holding them until stopped."""

    def __init__(self, mb: int) -> None:
        code = (
            "import sys\n"
            f"block = bytearray(b'\\x01') * ({mb} * 1024 * 1024)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "held", "memory helper failed to allocate"

    def free(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def test_memory_pressure_lowers_the_cap_and_it_recovers(redis_server: Any, tmp_path: Path, guard_app_installed: None):
    available = psutil.virtual_memory().available // MB
    hog_mb = 3000
    if available < hog_mb + 2500:
        pytest.skip(f"needs {hog_mb + 2500} MB available, the machine has {available}")
    threshold = available - 1500  # crossed when the helper holds 3000 MB; clear again by 1500 MB once it frees
    factor = 1 + 500 / threshold  # recovery mark: threshold + 500 MB
    env = batt_env(
        redis_server.url,
        **{
            **GUARD_OFF,
            "BATT_GUARD_MIN_AVAILABLE_MB": str(threshold),
            "BATT_GUARD_RECOVER_FACTOR": f"{factor:.6f}",
            "BATT_GUARD_RECOVER_SECONDS": "3",
            "BATT_GUARD_CHECK_SECONDS": "0.5",
            "BATT_TEST_SLEEP": "0.4",
        },
    )
    worker = Worker(env, extra=["--autoscale=3,1"], name="guard-mem").start()
    assert NO_AUTOSCALE_NOTICE not in worker.text()  # the guard manages this pool: no start-up notice
    app = client(redis_server.url)
    out = tmp_path / "run"
    run = subprocess.Popen(
        submit_cmd("-i", *IDS, "-b", SLEEP_BATT, "-q", "--require-broker", "--out", str(out)),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hog: MemoryHog | None = None
    try:
        wait_for(lambda: len(worker.pool_pids()) == 3, 60, what="the pool to grow to 3 under load")
        assert inspect(app, worker.node, "guard")["cap"] == 3

        hog = MemoryHog(hog_mb)
        wait_for(lambda: inspect(app, worker.node, "guard").get("cap") == 1, 30, what="the cap to fall to 1")
        report = inspect(app, worker.node, "guard")
        assert report["downgrades"] == 2 and report["reduced"] is True
        reason = report["last_transition"]["reason"]
        assert f"MB available < {threshold} MB" in reason, reason
        assert f"{reason} → concurrency 2→1 (memory " in report["last_transition"]["message"]
        wait_for(lambda: len(worker.pool_pids()) == 1, 30, what="the pool to shrink to 1 process")

        stats = inspect(app, worker.node, "stats")
        assert stats["autoscaler"]["cap"] == 1 and stats["autoscaler"]["guard"]["downgrades"] == 2
        assert stats["guard"]["cap"] == 1
        assert stats["prefetch_count"] == 1  # prefetch follows the cap (multiplier 1)
        # the CLI knows the command too
        cli = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "batt_tasks", "inspect", "guard", "-d", worker.node, "--json"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)[worker.node]["cap"] == 1

        hog.free()
        hog = None
        wait_for(lambda: inspect(app, worker.node, "guard").get("cap") == 3, 60, what="the cap to return to 3")
        report = inspect(app, worker.node, "guard")
        assert (report["downgrades"], report["upgrades"]) == (2, 2)
        assert report["last_transition"]["reason"].startswith("pressure gone for")

        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        lines = task_lines(out)
        assert sorted(lines) == sorted(IDS)
        assert all(line["errors"] == 0 and line["timeouts"] == 0 for line in lines.values()), lines
        text = worker.text()
        assert "guard: memory" in text and "→ concurrency 3→2" in text and "→ concurrency 2→3" in text
    finally:
        if hog is not None:
            hog.free()
        if run.poll() is None:
            run.kill()
            run.wait(10)
        worker.stop()


def test_critical_pressure_defers_samples_none_lost_none_twice(
    redis_server: Any, tmp_path: Path, guard_app_installed: None
) -> None:
    available = psutil.virtual_memory().available // MB
    hog_mb = 3000
    if available < hog_mb + 2500:
        pytest.skip(f"needs {hog_mb + 2500} MB available, the machine has {available}")
    log = tmp_path / "attempts.jsonl"
    env = batt_env(
        redis_server.url,
        **{
            **GUARD_OFF,
            "BATT_GUARD_CRITICAL_AVAILABLE_MB": str(available - 1500),
            "BATT_GUARD_DEFER_SECONDS": "1",
            "BATT_RETRY_MAX": "30",
            "BATT_GUARD_TEST_LOG": str(log),
        },
    )
    worker = Worker(env, concurrency=2, name="guard-crit").start()
    app = client(redis_server.url)
    hog = MemoryHog(hog_mb)
    try:
        ids = [f"crit-{n}" for n in range(6)]
        results = [send(app, task_id) for task_id in ids]
        wait_for(lambda: worker.text().count("deferred: memory") >= 2 * len(ids), 60, what="every sample deferred")
        assert attempts(log) == []  # nothing was scored under critical pressure
        hog.free()
        done = [r.get(timeout=120) for r in results]
    finally:
        hog.free()
        worker.stop()
    assert [d["status"] for d in done] == ["ok"] * len(ids)
    runs = [a["task_id"] for a in attempts(log)]
    assert sorted(runs) == sorted(ids)  # every sample ran exactly once to completion
    assert f"MB available < {available - 1500} MB" in worker.text()
