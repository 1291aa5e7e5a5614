"""Scenario R6: multi-host on RabbitMQ. The broker host (a rabbitmq-server node and Redis, the result backend)
and two worker hosts are network namespaces (``tests/netns.py``); one worker host's link is cut mid-run (packets
dropped: its connection hangs rather than fails). Nothing is lowered: after the heartbeat timeout (about two
``BATT_BROKER_HEARTBEAT`` intervals) RabbitMQ declares the connection dead and returns that worker's samples to the
queue, and the other worker scores them; the link is then restored and no sample appears twice in the results.

Needs root (skipped otherwise, but with ``CI=true`` as root it fails instead).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from rabbit_proc import RabbitServer, require_rabbitmq
from workers import batt_env

from faults.harness import (
    ExecLog,
    Plan,
    assert_run_scored_all_once,
    fault_tasks,
    outcome_counts,
    require_netns,
    start_ns_redis,
    stop_workers_keep_logs,
    tally,
    two_host_run,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.netns, pytest.mark.rabbitmq]

REDIS_PORT = 16379
HEARTBEAT = 10  # BATT_BROKER_HEARTBEAT's default, set explicitly so the bound below names it


@pytest.fixture
def net() -> Iterator[netns.Network]:
    require_rabbitmq()
    require_netns()
    netns.reap_stale()
    with netns.Network(subnet="10.213.10.0/24") as network:
        yield network


def test_link_cut_samples_returned_after_heartbeat_timeout(net: netns.Network, outcome: Any, tmp_path: Path) -> None:
    outcome["scenario"] = "R6"
    net.add_host("broker", aliases=("rabbitmq", "redis"))
    net.add_host("host1")
    net.add_host("host2")
    start_ns_redis(net, "broker", REDIS_PORT, tmp_path / "redis")
    rabbit = RabbitServer(management=False, wrap=lambda argv: net.command("broker", argv), bind="0.0.0.0")
    try:
        rabbit.start()
        plan = Plan(fault_tasks(60))
        log = ExecLog(tmp_path / "exec.jsonl", plan)
        common = {
            "BATT_FAULT_LOG": str(log.path),
            "BATT_FAULT_SLEEP": "0.1",
            "BATT_BROKER_HEARTBEAT": str(HEARTBEAT),
            "BATT_RABBITMQ_MANAGEMENT_URL": "off",
        }

        def env(**extra: str) -> dict[str, str]:
            e = batt_env(f"redis://redis:{REDIS_PORT}", **common, **extra)
            e["BATT_BROKER_URL"] = f"amqp://{rabbit.user}:{rabbit.password}@rabbitmq:{rabbit.port}//"
            e["BATT_RESULT_BACKEND"] = f"redis://redis:{REDIS_PORT}/1"
            return e

        workers, run = two_host_run(net, env, plan.ids, tmp_path / "out")
        w1, w2 = workers
        try:
            for w in workers:
                w.start()
            run.start()
            log.wait_completed(len(plan) // 5, 120, run.alive)
            wait_until(lambda: len(log.running("w1")) == 2, 30, "w1 to be mid-sample in both pool processes")
            cut_at = time.time()
            net.cut("host1")
            cut = log.running_at("w1", cut_at)
            wait_until(
                lambda: cut <= {ex.sample for ex in log.executions() if ex.node == "w2" and ex.started > cut_at},
                3 * HEARTBEAT + 30,
                "w2 to start the cut worker's samples",
            )
            returned_at = time.time()
            run_alive_at_restore = run.alive()
            net.restore("host1")
            restored_at = time.time()
            code = run.wait(180)
            w1_alive = w1.proc is not None and w1.proc.poll() is None
        finally:
            run.kill()
            stop_workers_keep_logs(workers, tmp_path)
    finally:
        rabbit.stop()

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    again = [ex for ex in log.executions() if ex.sample in cut and ex.node == "w2" and ex.started > cut_at]
    first_again = min(ex.started for ex in again)
    last = log.last_finish(cut)
    recover = None if last is None else round(last - cut_at, 2)
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"worker host1's link cut with {len(cut)} samples running; after the heartbeat timeout RabbitMQ returned "
            f"them and w2 started them {first_again - cut_at:.1f} s later (BATT_BROKER_HEARTBEAT={HEARTBEAT}); link "
            f"restored {restored_at - cut_at:.1f} s after the cut"
            + (" with the run still going" if run_alive_at_restore else "")
            + "; results.jsonl has each sample once"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert len(cut) == 2, "the cut did not land while w1 was scoring"
    assert w1_alive, "the cut worker died"
    assert first_again - cut_at >= HEARTBEAT / 2, "returned before any heartbeat could be missed?"
    assert returned_at - cut_at <= 3 * HEARTBEAT + 30
    assert all(n <= 2 for n in runs.values()), "a sample ran more than twice"
    # only what w1 held at the cut may run twice (running, or reserved and not yet started: not in the probe's log)
    twice = {s for s, n in runs.items() if n == 2}
    assert all(any(ex.node == "w1" for ex in log.executions() if ex.sample == s) for s in twice), twice
