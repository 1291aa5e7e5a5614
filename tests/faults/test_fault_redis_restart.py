"""Scenario 4: Redis (broker and result backend, AOF on) crashes mid-run and comes back on the same port.

Workers reconnect to the broker, the results they could not store while Redis was away are stored when it
is back, the producer's result subscription reconnects, and the run completes with every sample scored ok.

A delivery in flight at the crash can be left in kombu's ``unacked`` hash without the worker ever running
it (the crash lands between Redis recording the delivery and the worker reading the reply); such a sample
waits for the visibility timeout, then the workers' sweep redelivers it. The visibility timeout is short
here (10 s) so the test takes seconds; the outcome row counts those "stranded" samples.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from workers import ROOT, batt_env, submit_cmd

from faults.harness import (
    PROBE,
    ExecLog,
    Plan,
    Submit,
    assert_exactly_once,
    celery_id,
    fault_tasks,
    outcome_counts,
    queued_ids,
    result_meta,
    sample_of,
    tally,
    unacked_deliveries,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

DOWN_SECONDS = 3.0
VISIBILITY_TIMEOUT = 12  # with -t 2: 2 × hard limit (2 × 2 + 1 + 1) ≤ 12
RESTORE_INTERVAL = 1


@pytest.mark.parametrize(
    "crash",
    [False, True],
    ids=["restart", "crash"],
)
def test_redis_restart_mid_run(redis_server: Any, spawn_worker: Any, outcome: Any, tmp_path: Path, crash: bool) -> None:
    outcome["scenario"] = "4b" if crash else "4a"
    assert redis_server.appendonly
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {
        "BATT_FAULT_LOG": str(log.path),
        "BATT_FAULT_SLEEP": "0.05",
        "BATT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "BATT_RESTORE_INTERVAL": str(RESTORE_INTERVAL),
    }
    workers = [
        spawn_worker(batt_env(redis_server.url, BATT_FAULT_NODE=f"w{n}", **common), concurrency=2, name=f"w{n}")
        for n in (1, 2)
    ]
    args = ("-i", *plan.ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker")
    run = Submit(batt_env(redis_server.url, **common), tmp_path / "out", *args).start()
    broker = redis.Redis.from_url(f"{redis_server.url}/0")
    try:
        log.wait_completed(len(plan) // 4, 60, run.alive)
        in_flight = {ex.sample for ex in log.running()}
        killed_at = time.time()
        if crash:
            redis_server.kill()  # SIGKILL; appendfsync always keeps every write it acknowledged
        else:
            redis_server.stop()  # SIGTERM: a clean restart (docker restart, systemctl restart)
        done_at_kill = len(log.completed())
        time.sleep(DOWN_SECONDS)  # the outage itself: Redis stays down this long (nothing to wait for)
        redis_server.start()
        back_at = time.time()
        deliveries = unacked_deliveries(broker)  # what the outage left delivered and unacknowledged
        queued = {sample_of(i) for i in queued_ids(broker)}
        scored_before = log.completed()
        try:
            code = run.wait(VISIBILITY_TIMEOUT + 90)
        except AssertionError as exc:
            status = subprocess.run(
                submit_cmd("--status", run.run_dir().name), env=run.env, cwd=ROOT, capture_output=True, text=True
            )
            raise AssertionError(f"{exc}\n--status: {status.stdout}{status.stderr}") from None
        for w in workers:  # both workers are connected again (the run may have needed only one)
            assert "Unrecoverable error" not in w.text(), w.text()[-3000:]  # see batt_tasks.broker_fix
            wait_until(lambda w=w: w.text().count("Connected to redis://") >= 2, 30, f"{w.node} to reconnect")
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    executions = log.executions()
    at_crash = {sample_of(i): at for i, at in deliveries.items()}
    # stranded: delivered before the crash, yet never started before the visibility timeout redelivered it
    stranded = {
        s
        for s, at in at_crash.items()
        if not any(ex.sample == s and at - 1 <= ex.started < at + VISIBILITY_TIMEOUT for ex in executions)
    }
    # lost: neither scored, nor queued, nor delivered when Redis came back (a message popped by a worker's
    # BRPOP whose connection broke before the delivery was recorded); only a resubmission can save it
    lost = set(plan.samples) - scored_before - queued - set(at_crash)
    # recovered when the last of the samples the outage touched has its result stored again
    backend = redis.Redis.from_url(f"{redis_server.url}/1")
    run_id = run.run_dir().name
    stored = [result_meta(backend, celery_id(run_id, x)) for x in set(at_crash) | in_flight | lost]
    recover = round(max(m["done_at"] for m in stored) - killed_at, 2) if all(stored) and stored else None
    failures = [f for line in t.task_lines.values() for f in line["failures"]]
    how = "SIGKILLed" if crash else "stopped (SIGTERM)"
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"redis-server {how} with {done_at_kill} samples done and {len(in_flight)} running, restarted "
            f"{back_at - killed_at:.1f} s later from its AOF; both workers and the producer reconnected; "
            f"{len(at_crash)} deliveries were unacknowledged at the outage, {len(stranded)} of them stranded until "
            f"the visibility timeout ({VISIBILITY_TIMEOUT} s here, BATT_VISIBILITY_TIMEOUT) redelivered them; "
            f"{len(lost)} lost by the broker (popped, never recorded) and submitted again by the producer; "
            f"{len(failures)} samples ended as errors"
        ),
    )
    assert code == 0, f"{run.text()[-3000:]}\nfailures: {failures[:5]}"
    assert_exactly_once(t)
    assert not failures, failures[:5]
    assert t.status["ok"] == len(plan)
    assert "Traceback" not in run.text(), run.text()[-3000:]
    for w in workers:
        assert w.proc.poll() is None, w.text()[-3000:]
    assert recover is not None and recover < DOWN_SECONDS + VISIBILITY_TIMEOUT + 40, recover
