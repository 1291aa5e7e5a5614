"""The broker-dependent fault scenarios again, with RabbitMQ as the broker (issue 16); Redis stays the result backend.

No timeout is lowered here: ``BATT_VISIBILITY_TIMEOUT`` keeps its default (3600 s) and means nothing to
RabbitMQ, which returns a worker's unacknowledged samples to the queue the moment its connection closes.
One private rabbitmq-server node and one redis-server serve the module; each test takes its own vhost.

- R2: a whole worker SIGKILLed mid-run: its samples are rescored by the other worker within seconds.
- R4: the broker restarted mid-run: the durable quorum queue keeps every sample; workers reconnect.
- R5: the producer SIGKILLed mid-run, then ``--status`` and ``--resume``.
- R7: a sample that kills its whole worker every time: dead-lettered after ``BATT_DELIVERY_LIMIT`` deliveries,
  recorded as that sample's error result; the run completes.
- R8: a sample longer than a visibility timeout (5 s here) would allow: scored exactly once.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from workers import ROOT, Worker, rabbit_env, submit_cmd

from faults.harness import (
    PROBE,
    ExecLog,
    Plan,
    Submit,
    assert_exactly_once,
    assert_run_scored_all_once,
    fault_tasks,
    outcome_counts,
    tally,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.rabbitmq]

_n = itertools.count()
STATUS_RE = re.compile(r"(\d+)/(\d+) samples finished, (\d+) queued or running \(.*?\), (\d+) cancelled, (\d+) lost")


@pytest.fixture
def env(rabbit_server: Any, module_redis: Any) -> dict[str, str]:
    n = next(_n)
    url = rabbit_server.new_vhost(f"f{n}")
    return rabbit_env(url, rabbit_server.management_url, module_redis.url, db=n % 15)


def test_worker_sigkilled_samples_rescored_at_once(env, spawn_worker: Any, outcome: Any, tmp_path: Path) -> None:
    outcome["scenario"] = "R2"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {"BATT_FAULT_LOG": str(log.path)}
    w1 = spawn_worker(dict(env, BATT_FAULT_NODE="w1", BATT_FAULT_SLEEP="0.25", **common), concurrency=2, name="w1")
    w2 = spawn_worker(dict(env, BATT_FAULT_NODE="w2", **common), concurrency=2, name="w2")
    args = ("-i", *plan.ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker", "--no-worker-warn", "600")
    run = Submit(dict(env, **common), tmp_path / "out", *args).start()
    try:
        log.wait_completed(len(plan) // 4, 90, run.alive)
        wait_until(lambda: len(log.running("w1")) == 2, 30, "w1 to be mid-sample in both pool processes")
        killed_at = time.time()
        w1.kill()
        code = run.wait(120)
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    cut = log.running_at("w1", killed_at)
    runs = log.runs_per_sample()
    again = [ex for ex in log.executions() if ex.sample in cut and ex.started > killed_at]
    first_again = min((ex.started for ex in again), default=None)
    last = log.last_finish(cut)
    recover = None if last is None else round(last - killed_at, 2)
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"worker w1 SIGKILLed with {len(cut)} samples running; RabbitMQ returned its unacknowledged samples to "
            f"the queue as its connection closed and w2 started them "
            f"{'?' if first_again is None else f'{first_again - killed_at:.1f}'} s later (visibility timeout left "
            "at its 3600 s default, unused)"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert len(cut) == 2, "the kill did not land mid-sample"
    assert {ex.node for ex in again} == {"w2"}
    assert recover is not None and recover < 5, f"the killed worker's samples took {recover} s to be rescored"
    assert all(n == 1 for s, n in runs.items() if s not in cut), "only the samples w1 was running may run twice"
    assert w2.proc.poll() is None


def test_broker_restarted_mid_run_nothing_lost(
    rabbit_server: Any, env, spawn_worker: Any, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "R4"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    common = {"BATT_FAULT_LOG": str(log.path), "BATT_FAULT_SLEEP": "0.05"}
    workers = [spawn_worker(dict(env, BATT_FAULT_NODE=f"w{n}", **common), concurrency=2, name=f"w{n}") for n in (1, 2)]
    args = ("-i", *plan.ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker", "--no-worker-warn", "600")
    run = Submit(dict(env, **common), tmp_path / "out", *args).start()
    try:
        log.wait_completed(len(plan) // 4, 90, run.alive)
        in_flight = {ex.sample for ex in log.running()}
        done_at_stop = len(log.completed())
        stopped_at = time.time()
        rabbit_server.stop()  # rabbitmqctl stop: a clean restart (systemctl restart rabbitmq-server)
        rabbit_server.start()
        back_at = time.time()
        code = run.wait(180)
        for w in workers:
            wait_until(lambda w=w: w.text().count("Connected to amqp://") >= 2, 60, f"{w.node} to reconnect")
    finally:
        run.kill()

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    finished_at = run.finished or time.time()
    recover = round(finished_at - back_at, 2)
    failures = [f for line in t.task_lines.values() for f in line["failures"]]
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"rabbitmq-server stopped with {done_at_stop} samples done and {len(in_flight)} running, back "
            f"{back_at - stopped_at:.1f} s later; the durable quorum queue kept every queued sample, the samples "
            f"held at the stop were delivered again ({sum(1 for n in runs.values() if n > 1)} ran twice), both "
            f"workers reconnected; {len(failures)} errors (time to recover: from the broker's return to the run's end)"
        ),
    )
    assert code == 0, f"{run.text()[-3000:]}\nfailures: {failures[:5]}"
    assert_exactly_once(t)
    assert not failures and t.status["ok"] == len(plan), failures[:5]
    assert "Traceback" not in run.text(), run.text()[-3000:]
    for w in workers:
        assert w.proc.poll() is None, w.text()[-3000:]


def test_producer_sigkilled_then_status_and_resume(env, spawn_worker: Any, outcome: Any, tmp_path: Path) -> None:
    outcome["scenario"] = "R5"
    plan = Plan(fault_tasks(40))
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    e = dict(env, BATT_FAULT_LOG=str(log.path), BATT_FAULT_NODE="w1", BATT_FAULT_SLEEP="0.05")
    spawn_worker(e, concurrency=2, name="w1")
    out = tmp_path / "out"
    run = Submit(e, out, "-i", *plan.ids, "-b", str(PROBE), "-q", "--require-broker").start()
    resume = None
    try:

        def lines() -> list[str]:
            found = [d / "results.jsonl" for d in out.iterdir()] if out.exists() else []
            return found[0].read_text().splitlines() if found and found[0].exists() else []

        wait_until(lambda: len(lines()) >= 8, 90, "8 finished tasks in results.jsonl")
        run_dir = run.run_dir()
        run.kill()
        killed_at = time.time()
        before = (run_dir / "results.jsonl").read_bytes()
        status = subprocess.run(
            submit_cmd("--status", run_dir.name), env=e, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        resume = Submit(e, out, argv=submit_cmd("--resume", run_dir.name)).start()
        code = resume.wait(180)
    finally:
        run.kill()
        if resume is not None:
            resume.kill()

    t = tally(run_dir, plan)
    runs = log.runs_per_sample()
    m = STATUS_RE.search(status.stdout)
    recover = round((resume.finished or time.time()) - killed_at, 2)
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"producer SIGKILLed after {len(before.splitlines())} of {len(plan.ids)} task lines; --status: "
            f"{m.group(0) if m else status.stdout.strip()[:120]}; --resume waited for the confirmed samples and "
            f"collected them, resubmitting none"
        ),
    )
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert m, status.stdout
    finished, total, waiting, cancelled, lost = map(int, m.groups())
    assert total == len(plan) and finished + waiting + cancelled + lost == total and lost == cancelled == 0
    assert code == 0, resume.text()[-3000:]
    assert_exactly_once(t)
    assert t.status["ok"] == len(plan)
    assert (run_dir / "results.jsonl").read_bytes().startswith(before), "lines written before the kill changed"
    assert "0 submitted again" in resume.text(), resume.text()[-3000:]
    assert all(n == 1 for n in runs.values()), "a sample ran twice: --resume resubmitted a queued sample"


DELIVERY_LIMIT = 2


def test_poison_sample_dead_lettered_after_delivery_limit(env, outcome: Any, tmp_path: Path) -> None:
    outcome["scenario"] = "R7"
    plan = Plan(fault_tasks(6))
    victim = (plan.ids[2], "train", 0)
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    e = dict(
        env,
        BATT_FAULT_LOG=str(log.path),
        BATT_FAULT_NODE="w1",
        BATT_FAULT_TARGETS=victim[0],
        BATT_FAULT_ACTION="kill_worker",
        BATT_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
    )
    # a supervisor (systemd's Restart=always, compose's restart policy) starts the worker again whenever it dies
    workers: list[Worker] = []
    stop = threading.Event()

    def supervise() -> None:
        while not stop.is_set():
            if not workers or workers[-1].proc.poll() is not None:
                w = Worker(e, concurrency=1, name="w1")
                workers.append(w)
                try:
                    w.start()
                except RuntimeError:
                    continue
            time.sleep(0.1)

    supervisor = threading.Thread(target=supervise, daemon=True)
    supervisor.start()
    run = Submit(e, tmp_path / "out", "-i", *plan.ids, "-b", str(PROBE), "-t", "10", "-q", "--require-broker")
    try:
        wait_until(lambda: bool(workers) and " ready." in workers[0].text(), 60, "the first worker")
        run.start()
        code = run.wait(240)
    finally:
        run.kill()
        stop.set()
        supervisor.join(30)
        for w in workers:
            w.kill()
            w.log.unlink(missing_ok=True)

    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    failures = {f["sample"]: f for line in t.task_lines.values() for f in line["failures"]}
    name = f"{victim[0]} {victim[1]}[{victim[2]}]"
    starts = sorted(ex.started for ex in log.executions() if ex.sample == victim)
    recover = round((run.finished or time.time()) - starts[-1], 2) if starts else None
    outcome.update(
        **outcome_counts(plan, t, runs, recover, code),
        happened=(
            f"the sample killed its whole worker on each of its {runs[victim]} deliveries (the worker restarted by a "
            f"supervisor each time); RabbitMQ dead-lettered it past x-delivery-limit={DELIVERY_LIMIT}, the producer "
            f"recorded it as an error result ({failures.get(name, {}).get('error', 'none')}); "
            f"{t.status['ok']} others ok (time to recover: from its last start to the run's end)"
        ),
    )
    assert code == 1, run.text()[-3000:]
    assert_exactly_once(t)
    assert list(failures) == [name], failures
    assert failures[name]["status"] == "error", failures[name]
    assert f"dead-lettered: delivered {DELIVERY_LIMIT + 1} times" in failures[name]["error"], failures[name]
    assert t.status["ok"] == len(plan) - 1
    assert runs[victim] == DELIVERY_LIMIT + 1, runs[victim]
    assert len(workers) >= DELIVERY_LIMIT + 2


def test_sample_longer_than_a_visibility_timeout_scored_once(
    env, spawn_worker: Any, outcome: Any, tmp_path: Path
) -> None:
    outcome["scenario"] = "R8"
    plan = Plan(fault_tasks(6))
    victim = (plan.ids[1], "train", 0)
    log = ExecLog(tmp_path / "exec.jsonl", plan)
    e = dict(
        env,
        BATT_FAULT_LOG=str(log.path),
        BATT_FAULT_NODE="w1",
        BATT_FAULT_TARGETS=victim[0],
        BATT_FAULT_ACTION="slow",
        BATT_FAULT_SLOW_SECONDS="12",
        BATT_VISIBILITY_TIMEOUT="5",  # Redis would hand the sample to a second worker after 5 s (and refuse -t 20)
    )
    spawn_worker(e, concurrency=2, name="w1")
    spawn_worker(dict(e, BATT_FAULT_NODE="w2"), concurrency=2, name="w2")
    run = Submit(e, tmp_path / "out", "-i", *plan.ids, "-b", str(PROBE), "-t", "20", "-q", "--require-broker")
    run.start()
    try:
        code = run.wait(180)
    finally:
        run.kill()
    t = tally(run.run_dir(), plan)
    runs = log.runs_per_sample()
    (only,) = [ex for ex in log.executions() if ex.sample == victim] or [None]
    took = None if only is None or only.finished is None else round(only.finished - only.started, 1)
    outcome.update(
        **outcome_counts(plan, t, runs, None, code),
        happened=(
            f"one sample ran {took} s with BATT_VISIBILITY_TIMEOUT=5 (ignored by RabbitMQ) and two workers free: "
            f"it ran {runs[victim]} time(s), nothing was redelivered while its worker lived"
        ),
    )
    assert_run_scored_all_once(code, run, t, plan)
    assert runs[victim] == 1 and took is not None and took >= 12
    assert all(n == 1 for n in runs.values())
