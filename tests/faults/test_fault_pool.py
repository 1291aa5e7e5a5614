"""Scenario 1: a pool process SIGKILLed mid-sample; the sample is retried on a fresh pool process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from workers import batt_env

from faults.harness import (
    PROBE,
    ExecLog,
    Plan,
    Submit,
    assert_run_scored_all_once,
    fault_tasks,
    outcome_counts,
    tally,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_pool_process_sigkilled_mid_sample(redis_server: Any, spawn_worker: Any, outcome: Any, tmp_path: Path) -> None:
    outcome["scenario"] = "1"
    plan = Plan(fault_tasks(40))
    victim = (plan.ids[12], "train", 0)
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    env = batt_env(
        redis_server.url,
        BATT_FAULT_LOG=str(log.path),
        BATT_FAULT_NODE="w1",
        BATT_FAULT_TARGETS=victim[0],
        BATT_FAULT_ACTION="slow",
        BATT_FAULT_SLOW_SECONDS="3",
    )
    worker = spawn_worker(env, concurrency=2, name="w1")
    run = Submit(env, tmp_path / "out", "-i", *plan.ids, "-b", str(PROBE), "-q", "--require-broker").start()
    try:
        wait_until(lambda: any(ex.sample == victim for ex in log.running()), 60, "the victim sample to start")
        (first,) = [ex for ex in log.running() if ex.sample == victim]
        assert first.pid in worker.pool_pids()
        done_before = len(log.completed())

        killed_at = time.time()
        os.kill(first.pid, signal.SIGKILL)
        code = run.wait(120)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    finished = log.last_finish([victim])
    recover = None if finished is None else round(finished - killed_at, 2)
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"killed pool process mid-sample ({done_before} samples done); WorkerLostError → the sample was retried "
            f"on a new pool process and scored ok; the worker kept serving"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert runs[victim] == 2, f"the killed sample ran {runs[victim]} times"
    assert all(n == 1 for s, n in runs.items() if s != victim), "a sample other than the killed one ran twice"
    assert set(runs) == set(plan.samples)
    text = worker.text()
    assert "WorkerLostError" in text or "signal 9" in text, text[-3000:]
    assert worker.proc.poll() is None, "the worker itself must survive"
    assert first.pid not in worker.pool_pids() and len(worker.pool_pids()) == 2
    assert recover is not None and recover < 30
