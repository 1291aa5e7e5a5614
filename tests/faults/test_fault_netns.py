"""Scenario 6: multi-host. Broker in one network namespace, two workers in two others (veth + bridge,
private addresses used only inside those namespaces, see ``tests/netns.py``); one worker's link is cut
mid-run (its bridge port set down: packets dropped, connections hang rather than fail), its samples are
redelivered to the other worker after the visibility timeout; the link is restored while the run still
goes, the cut worker delivers its late results too, and no sample appears twice in the results.

Needs root. Skipped, with the reason, when network namespaces are unavailable; but with ``CI=true`` as
root it fails instead, so CI can never skip it silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from redis_proc import host_redis_argv
from workers import ROOT, Worker, batt_env, submit_cmd

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
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.netns]

PORT = 16379  # inside the broker's own namespace: never the machine's Redis
VISIBILITY_TIMEOUT = 12  # with -t 2: 2 × hard limit (2 × 2 + 1 + 1) ≤ 12
RESTORE_INTERVAL = 1


def _require_netns() -> None:
    reason = netns.netns_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"CI runs as root, so the multi-host fault test must run, but: {reason}")
    pytest.skip(f"multi-host fault test needs network namespaces: {reason}")


@pytest.fixture
def net() -> Iterator[netns.Network]:
    _require_netns()
    netns.reap_stale()
    with netns.Network(subnet="10.213.9.0/24") as network:
        yield network


def _ns_python(net: netns.Network, host: str, code: str, timeout: float = 20) -> str:
    done = net.run(host, [sys.executable, "-c", code], timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


UNACKED = (  # task id -> delivery time of every unacknowledged message, read from inside the broker's namespace
    f"import json, redis; c = redis.Redis(host='redis', port={PORT}, socket_timeout=5); "
    "at = dict(c.zrange('unacked_index', 0, -1, withscores=True)); "
    "print(json.dumps({json.loads(v)[0]['headers']['id']: at.get(k, 0.0) for k, v in c.hgetall('unacked').items()}))"
)
PING = f"import redis; print(redis.Redis(host='redis', port={PORT}, socket_timeout=2).ping())"


def test_link_cut_samples_redelivered_then_restored_no_duplicates(
    net: netns.Network, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "6"
    net.add_host("broker", aliases=("redis",))
    net.add_host("host1")
    net.add_host("host2")
    net.popen("broker", host_redis_argv(PORT, tmp_path / "redis", appendonly=True))
    wait_until(lambda: net.run("host1", [sys.executable, "-c", PING], timeout=10).returncode == 0, 20, "redis")

    plan = Plan(fault_tasks(60))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {
        "BATT_FAULT_LOG": str(log.path),
        "BATT_FAULT_SLEEP": "0.1",
        "BATT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "BATT_RESTORE_INTERVAL": str(RESTORE_INTERVAL),
    }
    url = f"redis://redis:{PORT}"
    workers: list[Worker] = []
    for n in (1, 2):
        w = Worker(batt_env(url, BATT_FAULT_NODE=f"w{n}", **common), concurrency=2, name=f"w{n}")
        w.args = net.command(f"host{n}", w.args)  # ip netns exec execs: the process is the worker itself
        workers.append(w)
    run = Submit(
        batt_env(url, **common),
        tmp_path / "out",
        # --no-worker-warn 600: the producer never pings, so the redelivery is the workers' own doing
        argv=net.command(
            "broker",
            submit_cmd("-i", *plan.ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker",
                       "--no-worker-warn", "600", "--out", str(tmp_path / "out")),
        ),
    )  # fmt: skip
    w1, w2 = workers
    try:
        for w in workers:
            w.start()
        run.start()
        log.wait_completed(len(plan) // 5, 90, run.alive)
        wait_until(lambda: len(log.running("w1")) == 2, 30, "w1 to be mid-sample in both pool processes")
        cut_at = time.time()
        net.cut("host1")
        # after the cut host1 can acknowledge nothing: what it holds stays in `unacked`, next to w2's own deliveries
        held = {sample_of(i): at for i, at in json.loads(_ns_python(net, "broker", UNACKED)).items()}
        candidates = log.stranded(held, cut_at, survivor="w2")  # w2's samples in flight at the cut left out
        wait_until(
            lambda: any(
                ex.node == "w2" and ex.sample in candidates and ex.started >= held[ex.sample] + VISIBILITY_TIMEOUT - 0.5
                for ex in log.executions()
            ),
            VISIBILITY_TIMEOUT + 30,
            "w2 to start the cut worker's samples",
        )
        # and one w2 fetched just at the cut (started before any redelivery could be) is w2's own
        affected = candidates - log.own_fetches("w2", cut_at, held, VISIBILITY_TIMEOUT)
        redelivered_at = time.time()
        run_alive_at_restore = run.alive()
        net.restore("host1")
        restored_at = time.time()
        code = run.wait(120)
        w1_alive = w1.proc is not None and w1.proc.poll() is None
    finally:
        run.kill()
        for w in workers:
            w.kill()
            with contextlib.suppress(OSError):
                shutil.move(w.log, tmp_path / f"worker-{w.node.split('@')[0]}.log")

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    last = log.last_finish(affected)
    recover = None if last is None else round(last - cut_at, 2)
    cut_running = log.running_at("w1", cut_at)
    back = [ex for ex in log.executions() if ex.node == "w1" and ex.started > restored_at]
    on_w2 = {ex.sample for ex in log.executions() if ex.node == "w2" and ex.started > cut_at}
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"worker host1's link cut with {len(cut_running)} samples running and {len(affected)} unacknowledged; "
            f"w2 started them {redelivered_at - cut_at:.1f} s later (visibility timeout {VISIBILITY_TIMEOUT} s); "
            f"link restored {restored_at - cut_at:.1f} s after the cut"
            + (" with the run still going" if run_alive_at_restore else "")
            + f"; host1 then scored {len(back)} more samples; results.jsonl has each sample once"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert cut_running, "the cut did not land while w1 was scoring"
    assert w1_alive, "the cut worker died"
    assert affected <= on_w2, f"samples of the cut worker not redelivered to w2: {sorted(affected - on_w2)}"
    assert run_alive_at_restore, "the run ended before the link came back: the restore proved nothing"
    assert recover is not None and recover <= VISIBILITY_TIMEOUT + RESTORE_INTERVAL + 15, recover
    assert all(n <= 2 for n in runs.values()), "a sample ran more than twice"
    assert {s for s, n in runs.items() if n == 2} <= affected, "a sample not held by the cut worker ran twice"
