"""Scenario 2: a whole worker SIGKILLed mid-run while a second one runs; its samples come back after the
visibility timeout (short here, ``BATT_VISIBILITY_TIMEOUT``) and the second worker scores them."""

from __future__ import annotations

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
    unacked_deliveries,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

VISIBILITY_TIMEOUT = 12  # seconds; the producer accepts -t 2 with it (2 × hard limit (2 × 2 + 1 + 1) ≤ 12)
RESTORE_INTERVAL = 1  # seconds between the surviving worker's sweeps for messages past the visibility timeout


def test_worker_sigkilled_mid_run_samples_redelivered(
    redis_server: Any, spawn_worker: Any, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "2"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {
        "BATT_FAULT_LOG": str(log.path),
        "BATT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "BATT_RESTORE_INTERVAL": str(RESTORE_INTERVAL),
    }
    # w1 is a slow host (0.25 s per batt call), so the kill surely lands while it is scoring
    w1 = spawn_worker(
        batt_env(redis_server.url, BATT_FAULT_NODE="w1", BATT_FAULT_SLEEP="0.25", **common), concurrency=2, name="w1"
    )
    w2 = spawn_worker(batt_env(redis_server.url, BATT_FAULT_NODE="w2", **common), concurrency=2, name="w2")
    env = batt_env(redis_server.url, **common)
    # --no-worker-warn 600: the producer never pings, so the redelivery is the workers' own doing
    args = ("-i", *plan.ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker", "--no-worker-warn", "600")
    run = Submit(env, tmp_path / "out", *args)
    broker = redis.Redis.from_url(f"{redis_server.url}/0")
    run.start()
    try:
        log.wait_completed(len(plan) // 4, 60, run.alive)
        wait_until(lambda: len(log.running("w1")) == 2, 30, "w1 to be mid-sample in both pool processes")
        killed_at = time.time()
        w1.kill()
        # what was unacknowledged at the kill, with when it was delivered: w1's deliveries, and w2's own
        held = {sample_of(i): at for i, at in unacked_deliveries(broker).items()}
        code = run.wait(VISIBILITY_TIMEOUT + 60)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    cut = log.running_at("w1", killed_at)
    # w1's deliveries: stranded() drops w2's samples in flight at the kill, own_fetches() one w2 fetched just then
    # (started before a redelivery could be; a sample of w1 started that early would leave `cut` unmatched below)
    affected = log.stranded(held, killed_at, survivor="w2") - log.own_fetches("w2", killed_at, held, VISIBILITY_TIMEOUT)
    last = log.last_finish(affected)
    recover = None if last is None else round(last - killed_at, 2)
    runs = log.runs_per_sample()
    after = [ex for ex in log.executions() if ex.sample in affected and ex.started > killed_at]
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"worker w1 SIGKILLed with {len(cut)} samples running and {len(affected)} unacknowledged; after the "
            f"visibility timeout ({VISIBILITY_TIMEOUT} s) Redis redelivered them and w2 scored them"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert cut, "the kill did not land mid-sample"
    assert set(cut) <= affected
    assert {ex.node for ex in after} == {"w2"}, "the killed worker's samples must be scored by w2"
    assert recover is not None and recover >= VISIBILITY_TIMEOUT - 1, "redelivered before the visibility timeout?"
    assert recover <= VISIBILITY_TIMEOUT + RESTORE_INTERVAL + 10, f"redelivery took {recover} s"
    assert set(runs) == set(plan.samples)
    # A sample w1 had scored but not yet acknowledged when it died is redelivered and runs again (at least once);
    # only the samples w1 held unacknowledged may run twice, and none may appear twice in the results.
    held_by_w1 = set(cut) | affected
    assert all(n == 1 for s, n in runs.items() if s not in held_by_w1), "only samples w1 held may run twice"
    assert w2.proc.poll() is None
