"""Scenario 7: batts that hang forever, call ``os._exit(1)``, segfault, or allocate memory without bound.

One worker serves the four runs in turn (module-scoped), so each run also proves the worker recovered from
the run before. In every run two samples misbehave (``train[0]`` of two tasks) among ~165 good ones; each bad
sample must end as that sample's ``timeout``/``error`` result, the rest as ``ok``, the run must complete with
exit code 1 (sample errors), and the worker must still be serving with a full pool.

- hang: swallows even the time limits; the hard limit (2 calls × ``-t 2`` + 2 s) kills the pool process → timeout.
- exit / segfault: the pool process dies → retried ``BATT_RETRY_MAX`` (1) times → dies again → error.
- memory: grows until the soft time limit stops it → timeout; its pool process, now past
  ``worker_max_memory_per_child``, is replaced after the sample.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_proc import RedisServer
from workers import Worker, batt_env

from faults.harness import (
    BATTS,
    ExecLog,
    Plan,
    Submit,
    assert_exactly_once,
    celery_id,
    fault_tasks,
    result_meta,
    tally,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# -t per batt: the hard limit (2 × -t + 2 s) is what stops the hang, the call limit what stops the growth; a crash
# needs no limit, and a long one keeps the hard limit from racing the worker's detection of a dead process
TIME_LIMIT = {"hang": 2.0, "memory": 2.0, "exit": 12.0, "segfault": 12.0}
RETRY_MAX = 1
MAX_MEMORY_PER_CHILD_KB = 200_000


def _plan() -> tuple[Plan, list[tuple[str, str, int]]]:
    """The runs' tasks (the same in each run) and their two bad samples."""
    plan = Plan(fault_tasks(40))
    return plan, [(plan.ids[5], "train", 0), (plan.ids[25], "train", 0)]


@dataclass
class Cluster:
    """The module's Redis and its one worker."""

    server: RedisServer
    worker: Worker
    env: dict[str, str]
    exec_log: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("batts")
    server = RedisServer().start()
    exec_log = tmp / "exec.jsonl"
    env = batt_env(
        server.url,
        BATT_FAULT_LOG=str(exec_log),
        BATT_FAULT_NODE="w1",
        BATT_RETRY_MAX=str(RETRY_MAX),
        BATT_MAX_MEMORY_PER_CHILD_KB=str(MAX_MEMORY_PER_CHILD_KB),
        BATT_FAULT_MEMORY_STEP_MB="4",
        BATT_FAULT_TARGETS=",".join(s[0] for s in _plan()[1]),
    )
    worker = Worker(env, concurrency=2, name="w1")
    try:
        worker.start()
        yield Cluster(server, worker, env, exec_log)
    finally:
        worker.stop(timeout=15)
        worker.log.unlink(missing_ok=True)
        server.cleanup()


# action → (scenario, expected status of a bad sample, text its error must contain, what the row says)
CASES = {
    "hang": ("7a", "timeout", "hard time limit", "hung past the soft limit; the hard limit killed its pool process"),
    "exit": ("7b", "error", "worker process died", "os._exit(1) killed the pool process, again on its 1 retry"),
    "segfault": ("7c", "error", "worker process died", "SIGSEGV killed the pool process, again on its 1 retry"),
    "memory": (
        "7d",
        "timeout",
        "time limit",
        "grew to {mb} MB until the soft time limit stopped it; its pool process, past "
        f"worker_max_memory_per_child ({MAX_MEMORY_PER_CHILD_KB // 1000} MB), was replaced",
    ),
}


@pytest.mark.parametrize("action", list(CASES))
def test_misbehaving_batt_becomes_a_result(cluster: Cluster, action: str, outcome: Any, tmp_path: Path) -> None:
    scenario, status, text, story = CASES[action]
    outcome["scenario"] = scenario
    plan, bad = _plan()
    log = ExecLog(cluster.exec_log, plan)
    log_start = time.time()
    w = cluster.worker
    batt = str(BATTS / f"fault_{action}.py")
    args = ("-i", *plan.ids, "-b", batt, "-t", f"{TIME_LIMIT[action]:g}", "-q", "--require-broker")
    run = Submit(cluster.env, tmp_path / "out", *args).start()
    try:
        code = run.wait(120)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    run_id = run.run_dir().name
    backend = redis.Redis.from_url(f"{cluster.server.url}/1")
    metas = {s: result_meta(backend, celery_id(run_id, s)) for s in bad}
    executions = [ex for ex in log.executions() if ex.started >= log_start]
    starts = {s: sorted(ex.started for ex in executions if ex.sample == s) for s in bad}
    recover = [metas[s]["done_at"] - starts[s][0] for s in bad if metas[s] and "done_at" in metas[s] and starts[s]]
    failures = {f["sample"]: f for line in t.task_lines.values() for f in line["failures"]}
    grew = [e["mb"] for e in log.events() if e["event"] == "grew" and e["t"] >= log_start]
    example = re.sub(r" Job: \d+\.", "", next(iter(failures.values()))["error"]) if failures else "none"
    outcome.update(
        samples=len(plan),
        lost=t.lost,
        duplicated=t.duplicated,
        reexecuted=sum(1 for s in bad if len(starts[s]) > 1),
        recover_s=round(max(recover), 2) if len(recover) == len(bad) else None,
        exit_code=code,
        happened=(
            f"2 bad samples: each {story.format(mb=max(grew, default='?'))} → {status} result "
            f"({example}); "
            f"{t.status['ok']} others ok; the worker kept serving"
        ),
    )
    assert code == 1, run.text()[-3000:]  # complete, with sample errors/timeouts
    assert_exactly_once(t)
    assert sorted(failures) == sorted(f"{s[0]} {s[1]}[{s[2]}]" for s in bad), failures
    for f in failures.values():
        assert f["status"] == status and text in f["error"], f
    assert t.status["ok"] == len(plan) - len(bad)
    assert w.proc is not None and w.proc.poll() is None, "the worker died"
    if action in ("exit", "segfault"):
        assert all(len(starts[s]) == RETRY_MAX + 1 for s in bad), starts
    else:
        assert all(len(starts[s]) == 1 for s in bad), starts
    if action == "memory":
        assert len(grew) == len(bad) and min(grew) * 1024 > MAX_MEMORY_PER_CHILD_KB, grew
    # every pool process that ran a bad sample is gone (killed, or recycled past worker_max_memory_per_child)
    # and the pool is whole again
    culprits = {ex.pid for ex in executions if ex.sample in bad}
    wait_until(
        lambda: not culprits & set(w.pool_pids()) and len(w.pool_pids()) == 2,
        20,
        f"pool processes {sorted(culprits)} to be replaced",
    )
    assert len(recover) == len(bad) and max(recover) < 30, recover
