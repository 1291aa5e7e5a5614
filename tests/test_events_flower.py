"""Task events off by default, Flower turning them on, and failed samples visible as such (issue 14).

One real redis-server, one real prefork worker (started as the tests' workers are: no ``--autoscale``,
heartbeat on, default settings: task events off) and, from the second test on, a real Flower process
whose HTTP API is read with ``FLOWER_UNAUTHENTICATED_API=1``. Also in distributed mode: errors.log with
the worker's traceback, ``--max-errors`` revoking the rest, ``--status`` calling those samples cancelled,
``--no-worker-timeout`` on time, a local run resumed on the cluster, and the guard's notice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_proc import RedisServer, free_port, wait_for
from workers import ROOT, Worker, batt_env, run_dir, run_submit, summary, task_lines

from batt_tasks.control import NO_AUTOSCALE_NOTICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BATTS = ROOT / "tests" / "batts"
ENABLED_BY_FLOWER = "Events of group {task} enabled by remote."
MIXED_BATT = '''"""Test batt: raises for boom* tasks, runs past any time limit for hang* tasks, identity otherwise."""
import time


def batt(task_id, S, I, C, log_path):
    if task_id.startswith("boom"):
        raise ValueError("boom on purpose in " + task_id)
    if task_id.startswith("hang"):
        time.sleep(60)
    return [(0, False, "identity", I)], []
'''


def _task(n: int, n_train: int = 1) -> dict[str, Any]:
    pair = {"input": [[n % 10]], "output": [[n % 10]]}
    return {"train": [pair] * n_train, "test": [pair]}


def _data(folder: Path, names: list[str], n_train: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(names):
        (folder / f"{name}.json").write_text(json.dumps(_task(n, n_train)))
    return folder


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    s = RedisServer().start()
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="module")
def env(server: RedisServer) -> dict[str, str]:
    return batt_env(server.url)


@pytest.fixture(scope="module")
def worker(env: dict[str, str]) -> Iterator[Worker]:
    w = Worker(env, concurrency=2).start()
    try:
        yield w
    finally:
        w.stop()


class Flower:
    """A ``celery -A batt_tasks flower`` process on a free port, its API open without credentials."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "batt_tasks", "flower", f"--port={self.port}"]
                + ["--address=127.0.0.1"],
                env=dict(env, FLOWER_UNAUTHENTICATED_API="1"),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.healthy, 60, what="Flower's /healthcheck")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthcheck", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def run_tasks(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.get("/api/tasks?limit=100000").items() if k.startswith(run_id + ".")}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def flower(env: dict[str, str], worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    f = Flower(env, tmp_path_factory.mktemp("flower") / "flower.log")
    try:
        # Flower broadcasts enable_events every few seconds; samples run before it lands are not seen.
        wait_for(lambda: ENABLED_BY_FLOWER in worker.text(), 60, what="Flower's enable_events to reach the worker")
        yield f
    finally:
        f.stop()


class EventTap:
    """Every Celery event channel published on the broker's Redis (PSUBSCRIBE), by routing key."""

    def __init__(self, server: RedisServer) -> None:
        self.client = redis.Redis.from_url(server.url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("*celeryev*")
        self.keys: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                self.keys.append(message["channel"].decode().rsplit("/", 1)[-1])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.client.close()


# --------------------------------------------------------------------------------- events off by default


def test_events_are_off_by_default_and_the_worker_keeps_its_heartbeat(
    server: RedisServer, env: dict[str, str], worker: Worker, tmp_path: Path
) -> None:
    """Without Flower no task event is published, by the worker or the producer; heartbeats still are."""
    assert "--without-heartbeat" not in worker.args
    tap = EventTap(server)
    try:
        done = run_submit(env, "-i", "007bbfb7", "--require-broker", "-q", "--out", str(tmp_path))
        assert done.returncode == 0, done.stderr
        wait_for(lambda: "worker.heartbeat" in tap.keys, 30, what="a worker heartbeat event")
    finally:
        tap.close()
    assert not [k for k in tap.keys if k.startswith("task.")], tap.keys
    # BATT_TASK_EVENTS=1 turns both on
    on = subprocess.run(
        [
            sys.executable,
            "-c",
            "from batt_tasks.celery import app; c = app.conf; "
            "print(c.worker_send_task_events, c.task_send_sent_event, c.broker_transport_options['fanout_patterns'])",
        ],
        env=dict(env, BATT_TASK_EVENTS="1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert on.stdout.split() == ["True", "True", "True"]


def test_worker_without_autoscale_says_once_that_the_guard_cannot_lower_its_concurrency(worker: Worker) -> None:
    assert worker.text().count(NO_AUTOSCALE_NOTICE) == 1


# ------------------------------------------------------------------------------ Flower shows every sample


def test_flower_lists_every_sample_with_its_final_state(env: dict[str, str], flower: Flower, tmp_path: Path) -> None:
    batt = tmp_path / "mixed.py"
    batt.write_text(MIXED_BATT)
    names = ["boom0001", "hang0001", "okay0001", "okay0002"]
    data = _data(tmp_path / "data", names)
    out = tmp_path / "out"
    done = run_submit(env, "--data", str(data), "-b", str(batt), "-t", "1", "--require-broker", "--out", str(out))
    assert done.returncode == 1, done.stderr
    run = summary(out)
    assert (run["errors"], run["timeouts"], run["ok"]) == (2, 2, 4)
    # each kind announced once during the run, counted in the summary
    assert done.stderr.count("error boom0001 ") == 1 and done.stderr.count("timeout hang0001 ") == 1, done.stderr
    assert {(k["status"], k["count"]) for k in run["error_kinds"]} == {("error", 2), ("timeout", 2)}
    lines = task_lines(out)
    assert lines["boom0001"]["failures"][0]["error"] == "ValueError: boom on purpose in boom0001"
    assert "time limit of 1s exceeded" in lines["hang0001"]["failures"][0]["error"]
    # the worker's traceback came back with the result: errors.log has it
    log = (run_dir(out) / "errors.log").read_text()
    assert 'mixed.py", line' in log and "raise ValueError" in log
    assert "time.sleep(60)" in log  # where the hanging batt was when its soft time limit hit

    def all_final() -> dict[str, dict[str, Any]] | None:
        tasks = flower.run_tasks(run["run_id"])
        final = {k: v for k, v in tasks.items() if v.get("state") in ("SUCCESS", "FAILURE")}
        return final if len(final) == run["samples"] else None

    tasks = wait_for_value(all_final, 60, f"Flower to list the {run['samples']} samples of the run, all finished")
    states = {k.split(".")[1]: set() for k in tasks}
    for uuid, task in tasks.items():
        states[uuid.split(".")[1]].add(task["state"])
    assert states == {
        "boom0001": {"FAILURE"},
        "hang0001": {"FAILURE"},
        "okay0001": {"SUCCESS"},
        "okay0002": {"SUCCESS"},
    }
    boom = next(t for u, t in tasks.items() if ".boom0001." in u)
    assert "ValueError: boom on purpose" in boom["exception"] and len(boom["exception"]) < 300


def wait_for_value(fn: Any, timeout: float, what: str) -> Any:
    box: list[Any] = []

    def check() -> bool:
        value = fn()
        if value:
            box.append(value)
        return bool(value)

    wait_for(check, timeout, interval=0.5, what=what)
    return box[-1]


# --------------------------------------------------------------------------------- stopping and resuming


def test_max_errors_revokes_the_rest_and_status_calls_them_cancelled(
    env: dict[str, str], worker: Worker, tmp_path: Path
) -> None:
    data = _data(tmp_path / "data", [f"t{i:04d}" for i in range(30)], n_train=2)  # 90 samples
    out = tmp_path / "out"
    done = run_submit(
        env,
        "--data",
        str(data),
        "-b",
        str(BATTS / "broken.py"),
        "--max-errors",
        "4",
        "--require-broker",
        "--out",
        str(out),
    )
    assert done.returncode == 1, done.stderr
    run = summary(out)
    assert run["stopped"].startswith("--max-errors 4") and run["samples_done"] < run["samples"]
    assert "stopped: --max-errors 4" in done.stderr
    assert "Traceback (most recent call last)" in (run_dir(out) / "errors.log").read_text()

    def cancelled_status() -> str | None:
        status = run_submit(env, "--status", run["run_id"])
        assert status.returncode == 0, status.stderr
        text = status.stdout
        return text if " 0 running" in text and " 0 queued" in text else None

    text = wait_for_value(cancelled_status, 60, "the stopped run's samples to settle")
    assert " 0 lost" in text, text
    cancelled = int(text.split(" cancelled")[0].rsplit(" ", 1)[-1])
    assert cancelled > 0, text


def test_no_worker_timeout_stops_when_it_says(server: RedisServer, tmp_path: Path) -> None:
    env = batt_env(server.url, db=4)  # no worker consumes this broker database
    started = time.monotonic()
    done = run_submit(env, "-c", "1", "--require-broker", "--no-worker-timeout", "3", "--out", str(tmp_path))
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "for 3s (--no-worker-timeout)" in done.stderr, done.stderr
    assert took < 30


def test_local_run_resumes_on_a_cluster_now_available(env: dict[str, str], worker: Worker, tmp_path: Path) -> None:
    data = _data(tmp_path / "data", ["a0001", "a0002", "a0003"])
    out = tmp_path / "out"
    local = run_submit(env, "--data", str(data), "--local", "-q", "--out", str(out))
    assert local.returncode == 0, local.stderr
    folder = run_dir(out)
    whole = task_lines(out)
    # as if the local run had stopped after its first task
    lines = (folder / "results.jsonl").read_text().splitlines()
    (folder / "results.jsonl").write_text(lines[0] + "\n")
    resumed = run_submit(env, "--resume", folder.name, "--out", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == str(folder)
    run = summary(out)
    assert run["mode"] == "distributed" and run["tasks_done"] == 3
    assert task_lines(out) == whole  # same scores from the cluster as locally
