"""Scenario 3: a worker SIGTERMed mid-run hands its unacknowledged samples back at once.

The visibility timeout stays at an hour in both tests, so a sample left unacknowledged by the stopped
worker would stall the run far beyond the deadlines here: finishing in seconds proves nothing waited for it.

- 3a, warm shutdown (the default for SIGTERM): the worker stops taking samples, finishes the ones it is
  scoring, acknowledges them and exits 0 (with ``worker_prefetch_multiplier=1`` it holds no others).
- 3b, soft shutdown (``REMAP_SIGTERM=SIGQUIT`` and ``BATT_SOFT_SHUTDOWN_TIMEOUT``): samples still running when
  the grace ends are cancelled and their messages requeued at once; the other worker scores them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from workers import batt_env

from faults.harness import (
    PROBE,
    ExecLog,
    Plan,
    Submit,
    assert_run_scored_all_once,
    fault_tasks,
    outcome_counts,
    sample_of,
    tally,
    unacked_ids,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

VISIBILITY_TIMEOUT = 3600  # the production default: nothing may wait for it
SOFT_SHUTDOWN_TIMEOUT = 2.0


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the SIGTERMed worker did not exit within {timeout:.0f}s") from None
    return code, time.time()


def test_sigterm_warm_shutdown_finishes_running_samples(
    redis_server: Any, spawn_worker: Any, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "3a"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {"BATT_FAULT_LOG": str(log.path), "BATT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    # w1 is a slow host (0.25 s per batt call), so the signal surely lands while it is scoring
    w1 = spawn_worker(
        batt_env(redis_server.url, BATT_FAULT_NODE="w1", BATT_FAULT_SLEEP="0.25", **common), concurrency=2, name="w1"
    )
    spawn_worker(batt_env(redis_server.url, BATT_FAULT_NODE="w2", **common), concurrency=2, name="w2")
    broker = redis.Redis.from_url(f"{redis_server.url}/0")
    args = ("-i", *plan.ids, "-b", str(PROBE), "-q", "--require-broker")
    run = Submit(batt_env(redis_server.url, **common), tmp_path / "out", *args).start()
    try:
        log.wait_completed(len(plan) // 4, 60, run.alive)
        wait_until(lambda: len(log.running("w1")) == 2, 30, "w1 to be mid-sample in both pool processes")
        held = unacked_ids(broker)
        sent = time.time()
        w1.signal(signal.SIGTERM)
        w1_code, w1_exit = _wait_exit(w1.proc, 30)
        code = run.wait(60)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    running = log.running_at("w1", sent)
    runs = log.runs_per_sample()
    w1_held = log.stranded({sample_of(i) for i in held}, sent, survivor="w2")
    last = log.last_finish(w1_held)
    # recovered when w1 is gone and every sample it held is scored
    recover = None if last is None else round(max(last, w1_exit) - sent, 2)
    on_w1 = [ex for ex in log.executions() if ex.node == "w1"]
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"warm shutdown: w1 took no new sample, finished the {len(running)} it was scoring, acknowledged them "
            f"and exited {w1_code} after {w1_exit - sent:.1f} s; w2 scored the rest (visibility timeout "
            f"{VISIBILITY_TIMEOUT} s never waited for)"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert w1_code == 0, w1.text()[-3000:]
    assert running, "the SIGTERM did not land while w1 was scoring"
    for sample in running:  # the samples w1 was scoring were finished by w1, not cut off
        assert any(ex.sample == sample and ex.finished is not None for ex in on_w1), sample
    assert not [ex for ex in on_w1 if ex.started > sent + 0.5], "w1 started samples after SIGTERM"
    assert all(n == 1 for n in runs.values()), "a warm shutdown must not make any sample run twice"
    assert broker.hlen("unacked") == 0, "messages left unacknowledged after the run"
    assert recover is not None and recover < 30


def test_sigterm_soft_shutdown_requeues_long_samples_at_once(
    redis_server: Any, spawn_worker: Any, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "3b"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {"BATT_FAULT_LOG": str(log.path), "BATT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    # on w1 every task's train[0] takes 120 s: far longer than the 2 s grace of its soft shutdown
    w1 = spawn_worker(
        batt_env(
            redis_server.url,
            BATT_FAULT_NODE="w1",
            BATT_FAULT_TARGETS=",".join(plan.ids),
            BATT_FAULT_ACTION="slow",
            BATT_FAULT_SLOW_SECONDS="120",
            BATT_SOFT_SHUTDOWN_TIMEOUT=str(SOFT_SHUTDOWN_TIMEOUT),
            REMAP_SIGTERM="SIGQUIT",
            **common,
        ),
        concurrency=2,
        name="w1",
    )
    spawn_worker(batt_env(redis_server.url, BATT_FAULT_NODE="w2", **common), concurrency=2, name="w2")
    broker = redis.Redis.from_url(f"{redis_server.url}/0")
    args = ("-i", *plan.ids, "-b", str(PROBE), "-t", "200", "-q", "--require-broker")
    run = Submit(batt_env(redis_server.url, **common), tmp_path / "out", *args).start()

    def stuck() -> list[Any]:
        return [ex for ex in log.running("w1") if ex.sample[1:] == ("train", 0)]

    try:
        wait_until(lambda: len(stuck()) == 2, 60, "w1 to be inside two long samples")
        long_samples = {ex.sample for ex in stuck()}
        sent = time.time()
        w1.signal(signal.SIGTERM)
        w1_code, w1_exit = _wait_exit(w1.proc, SOFT_SHUTDOWN_TIMEOUT + 20)
        code = run.wait(60)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    last = log.last_finish(long_samples)
    recover = None if last is None else round(last - sent, 2)
    redone = [ex for ex in log.executions() if ex.sample in long_samples and ex.started > sent]
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"soft shutdown: w1 gave its 2 running 120-s samples a {SOFT_SHUTDOWN_TIMEOUT:g} s grace, then "
            f"cancelled them and requeued their messages; w1 exited {w1_code} after {w1_exit - sent:.1f} s and w2 "
            f"started them {min((ex.started for ex in redone), default=sent) - sent:.1f} s after the SIGTERM"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    text = w1.text()
    assert "Soft Shutdown" in text, "BATT_SOFT_SHUTDOWN_TIMEOUT did not reach worker_soft_shutdown_timeout"
    assert w1_exit - sent >= SOFT_SHUTDOWN_TIMEOUT - 0.5, "the running samples got no grace"
    assert {ex.node for ex in redone} == {"w2"} and {ex.sample for ex in redone} == long_samples
    assert all(ex.finished is not None for ex in redone)
    assert all(n == 1 for s, n in runs.items() if s not in long_samples)
    assert recover is not None and recover < SOFT_SHUTDOWN_TIMEOUT + 15, f"requeue took {recover} s"
    assert broker.hlen("unacked") == 0 and broker.llen("batt") == 0, "a message of the run was left behind"
