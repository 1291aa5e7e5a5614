"""Runs that stop over the batt's code, with real processes: a worker refusing the batt after tasks finished
(real redis-server, real prefork workers), and ``--resume`` of a run whose bundle is gone: a local run's evicted
from the cache (a real LRU eviction), a cluster run's gone from the cache and the backend; and one that expired
only in the backend, which ``--resume`` stores again from the producer's cache.

The mid-run refusal is made deterministic by the batt itself: on the first worker, every sample but those
of the first task waits for a gate file, so the first task finishes and the worker is stopped (warm
shutdown) before the rest run; the worker that replaces it holds another signing key (a key rotation done
on the new host only) and refuses the next sample.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from bundle_support import one_error_line, same_results
from redis_proc import wait_for
from workers import ROOT, Worker, batt_env, run_dir, run_submit, submit_cmd, summary, task_lines

from batt_tasks.sample import bundle_key, cancel_key

pytestmark = pytest.mark.integration

IDS = ["007bbfb7", "017c7c7b", "025d127b"]
KEY = "test-signing-key-stops-0123456789"
DB_REFUSAL, DB_GONE = 12, 14  # broker databases of the session's shared redis-server (backend: the next one)

GATED = """import os
import time


def batt(task_id, S, I, C, log_path):
    gate = os.environ.get("BATT_TEST_GATE")
    if gate and task_id != {first!r}:  # on the first worker, every task but the first waits for the gate
        deadline = time.monotonic() + 300
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
    if task_id in {failing!r}:
        raise ValueError("fails on purpose in " + task_id)
    return [(1, False, "identity", I)], []
"""


def write_gated(directory: Path, failing: tuple[str, ...] = (), data: bytes | None = None) -> Path:
    """``directory/mybatt.py`` (identity; raising on ``failing`` tasks), with a ``data.bin`` when ``data``."""
    directory.mkdir(parents=True, exist_ok=True)
    batt = directory / "mybatt.py"
    batt.write_text(GATED.format(first=IDS[0], failing=list(failing)))
    if data is not None:
        (directory / "data.bin").write_bytes(data)
    return batt


def test_refusal_after_tasks_finished_stops_the_run_and_keeps_them(shared_redis, tmp_path):
    server, db = shared_redis, DB_REFUSAL
    batt = write_gated(tmp_path / "batt")
    gate = tmp_path / "gate"
    worker_env = lambda key, cache: batt_env(  # noqa: E731
        server.url, db, BATT_SIGNING_KEY=key, BATT_BUNDLE_CACHE=str(tmp_path / cache), BATT_TEST_GATE=str(gate)
    )
    producer = batt_env(server.url, db, BATT_SIGNING_KEY=KEY, BATT_BUNDLE_CACHE=str(tmp_path / "producer-cache"))
    out = tmp_path / "out"
    first = Worker(worker_env(KEY, "cache-1"), concurrency=1, name="first").start()
    rotated = Worker(worker_env("a-rotated-key-the-producer-lacks", "cache-2"), concurrency=1, name="rotated")
    workers = [first, rotated]
    try:
        argv = ("-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--no-worker-warn", "600", "--out", str(out))
        proc = subprocess.Popen(
            submit_cmd(*argv), env=producer, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        results = lambda: next(iter(out.glob("*/results.jsonl")), None)  # noqa: E731
        wait_for(
            lambda: (r := results()) is not None and r.read_text().count("\n") >= 1 or proc.poll() is not None,
            180,
            what="the first task's line",
        )
        assert proc.poll() is None, proc.communicate()
        # the first worker finishes the first task, holds a sample of the second at the gate, and goes:
        # warm shutdown (it takes no new sample), then the gate opens and its sample finishes
        first.signal(signal.SIGTERM)
        wait_for(lambda: "Warm shutdown" in first.text(), 60, what="the first worker's warm shutdown")
        gate.touch()
        assert first.stop(timeout=120) == 0
        kept = results().read_text()  # type: ignore[union-attr]
        rotated.start()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    line = one_error_line(done)
    folder = run_dir(out)
    assert f"worker {rotated.node} rejected the batt bundle mybatt.py" in line, line
    assert "signature mismatch — give producer and workers the same BATT_SIGNING_KEY" in line, line
    assert f"results so far kept in {folder}" in line, line

    # finished tasks are kept, intact: the first task's line as it was written before the refusal
    text = (folder / "results.jsonl").read_text()
    assert text.startswith(kept) and kept.count("\n") == 1, (kept, text)
    lines = [json.loads(raw) for raw in text.splitlines()]  # every line whole
    assert [x["task_id"] for x in lines] == [IDS[0]], lines
    stopped = summary(out)
    assert stopped["interrupted"] is True and stopped["tasks_done"] == 1, stopped
    assert 0 < stopped["samples_done"] < stopped["samples"], stopped

    # the run's pending samples are cancelled: workers skip the rest, and nothing stays queued
    run_id = folder.name
    backend = redis.Redis.from_url(f"{server.url}/{db + 1}")
    assert backend.get(cancel_key(run_id)) == b"0"

    def status() -> str:
        shown = run_submit(producer, "--status", run_id, "--out", str(out))
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    wait_for(lambda: re.search(r" 0 running, 0 queued, \d+ cancelled, 0 lost", status()), 120, what="a drained run")
    counts = re.search(r"(\d+)/(\d+) samples finished, 0 running, 0 queued, (\d+) cancelled", status())
    assert counts and int(counts[1]) + int(counts[3]) == int(counts[2]), status()
    rotated.stop()

    # the bundle expired from the backend meanwhile: --resume stores it again from the producer's cache, and
    # a worker with the right key and an empty cache (another host) scores the rest
    bid = json.loads((folder / "plan.json").read_text())["options"]["batt_code"]["bundle"]
    assert backend.delete(bundle_key(bid)) == 1
    again_worker = Worker(worker_env(KEY, "cache-3"), concurrency=1, name="again").start()
    workers.append(again_worker)
    try:
        again = run_submit(producer, "--resume", run_id, "-q")
        assert again.returncode == 0, again.stderr
    finally:
        for w in workers:
            w.stop()
    assert backend.exists(bundle_key(bid))
    resumed = (folder / "results.jsonl").read_text()
    assert resumed.startswith(kept), "the first task's line changed on resume"
    assert sorted(task_lines(out)) == sorted(IDS)
    local = run_submit(producer, "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(tmp_path / "l"))
    assert local.returncode == 0, local.stderr
    same_results(out, tmp_path / "l")


def test_resume_of_a_local_run_whose_bundle_was_evicted_names_what_is_missing(tmp_path):
    cache = tmp_path / "bundle-cache"
    env = dict(
        batt_env("redis://127.0.0.1:9"),  # nobody listens: local mode
        BATT_BUNDLE_CACHE=str(cache),
        BATT_BUNDLE_CACHE_MB="1",
        BATT_SIGNING_KEY=KEY,
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # each bundle ships 600 KB of data: two do not fit a 1 MB cache
    batt = write_gated(tmp_path / "a", failing=(IDS[1],), data=os.urandom(600 * 1024))
    out = tmp_path / "out"
    stopped = run_submit(
        env, "-i", *IDS, "-b", str(batt), "--batt-include", "data.bin", "--max-errors", "1", "-q", "--out", str(out)
    )
    assert stopped.returncode == 1, stopped.stderr  # stopped by --max-errors: a run to resume
    folder = run_dir(out)
    kept = (folder / "results.jsonl").read_text()
    assert json.loads(kept.splitlines()[0])["task_id"] == IDS[0]
    plan = json.loads((folder / "plan.json").read_text())
    bid = plan["options"]["batt_code"]["bundle"]
    assert (cache / bid).is_dir()

    other = write_gated(tmp_path / "b", data=os.urandom(600 * 1024))
    later = run_submit(
        env, "-i", IDS[0], "-b", str(other), "--batt-include", "data.bin", "-q", "--out", str(tmp_path / "o")
    )
    assert later.returncode == 0, later.stderr
    assert not (cache / bid).exists(), "the later run's bundle did not evict the first one"

    resumed = run_submit(env, "--resume", folder.name, "--local", "--out", str(out), "-q")
    line = one_error_line(resumed)
    assert f"--resume {folder.name}: the run's batt bundle {bid[:12]} (mybatt.py) is gone" in line, line
    assert f"not in the bundle cache {cache}" in line and "the only place a local run keeps it" in line
    assert f"start a new run from the batt file (batt-submit -b {batt}" in line, line
    assert "not in the result backend (expired" not in line, line
    assert (folder / "results.jsonl").read_text() == kept  # nothing lost


def test_resume_of_a_cluster_run_whose_bundle_is_gone_from_cache_and_backend(shared_redis, tmp_path):
    server, db = shared_redis, DB_GONE
    cache = tmp_path / "producer-cache"
    env = batt_env(server.url, db, BATT_SIGNING_KEY=KEY, BATT_BUNDLE_CACHE=str(cache))
    batt = write_gated(tmp_path / "batt")
    out = tmp_path / "out"
    # no worker: the run stops with its plan and bundle stored, to be resumed
    first = run_submit(env, "-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--no-worker-timeout", "2",
                       "--out", str(out))  # fmt: skip
    assert first.returncode != 0 and "no worker consumed samples" in first.stderr, first.stderr
    folder = run_dir(out)
    bid = json.loads((folder / "plan.json").read_text())["options"]["batt_code"]["bundle"]
    backend = redis.Redis.from_url(f"{server.url}/{db + 1}")
    assert backend.delete(bundle_key(bid)) == 1  # expired there...
    shutil.rmtree(cache / bid)  # ...and evicted here
    resumed = run_submit(env, "--resume", folder.name, "-q")
    line = one_error_line(resumed)
    assert f"--resume {folder.name}: the run's batt bundle {bid[:12]} (mybatt.py) is gone" in line, line
    assert f"not in the bundle cache {cache}" in line and "nor in the result backend (expired" in line, line
    assert f"start a new run from the batt file (batt-submit -b {batt}" in line, line
    assert not backend.exists(bundle_key(bid))
