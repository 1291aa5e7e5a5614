"""Distributed mode against a real redis-server and real prefork workers (issue 3)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from redis_proc import free_port, wait_for
from workers import ROOT, Worker, batt_env, run_dir, run_submit, submit_cmd, summary, task_lines

pytestmark = pytest.mark.integration

BATTS = ROOT / "tests" / "batts"
IDS = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b", "045e512c", "0520fde7", "05269061", "05f2a901", "06df4c85"]


@pytest.fixture
def worker(redis_server):
    w = Worker(batt_env(redis_server.url), concurrency=2).start()
    yield w
    w.stop()


def test_distributed_equals_local(redis_server, worker, tmp_path):
    env = batt_env(redis_server.url)
    dist = run_submit(env, "-i", *IDS, "--require-broker", "-q", "--out", str(tmp_path / "d"))
    assert dist.returncode == 0, dist.stderr
    local = run_submit(env, "-i", *IDS, "--local", "-q", "--out", str(tmp_path / "l"))
    assert local.returncode == 0, local.stderr
    a, b = task_lines(tmp_path / "d"), task_lines(tmp_path / "l")
    assert sorted(a) == sorted(IDS)
    for task_id in IDS:
        for field in sorted(set(a[task_id]) | set(b[task_id])):
            assert a[task_id].get(field) == b[task_id].get(field), f"{task_id}.{field} differs"
    assert summary(tmp_path / "d")["mode"] == "distributed"
    assert summary(tmp_path / "l")["mode"] == "local"
    sub_d = json.loads((run_dir(tmp_path / "d") / "submission.json").read_text())
    sub_l = json.loads((run_dir(tmp_path / "l") / "submission.json").read_text())
    assert sub_d == sub_l


def test_random_draw_same_in_both_modes(redis_server, worker, tmp_path):
    env = batt_env(redis_server.url)
    dist = run_submit(env, "-c", "-8", "--seed", "7", "-q", "--out", str(tmp_path / "d"))
    local = run_submit(env, "-c", "-8", "--seed", "7", "--local", "-q", "--out", str(tmp_path / "l"))
    assert dist.returncode == local.returncode == 0, dist.stderr + local.stderr
    a, b = task_lines(tmp_path / "d"), task_lines(tmp_path / "l")
    assert len(a) == 8 and a == b


def test_broker_down_falls_back_to_local(tmp_path):
    env = batt_env(f"redis://127.0.0.1:{free_port()}", BATT_BROKER_CHECK_TIMEOUT="1")
    done = run_submit(env, "-c", "2", "-q", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "broker unreachable" in done.stderr and "local sequential mode" in done.stderr
    assert summary(tmp_path)["mode"] == "local"
    assert len(task_lines(tmp_path)) == 2


def test_require_broker_exits_2(tmp_path):
    env = batt_env(f"redis://127.0.0.1:{free_port()}", BATT_BROKER_CHECK_TIMEOUT="1")
    done = run_submit(env, "-c", "2", "--require-broker", "--out", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "broker unreachable" in lines[0] and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_timeout_in_worker_is_a_result_and_worker_keeps_serving(redis_server, worker, tmp_path):
    env = batt_env(redis_server.url)
    for batt in ("dist_hang_one.py", "dist_hang_c.py"):
        out = tmp_path / batt
        done = run_submit(
            env, "-i", "007bbfb7", "017c7c7b", "-t", "1", "-b", str(BATTS / batt), "-q", "--out", str(out)
        )
        assert done.returncode == 1, done.stderr  # complete, with timed-out samples
        lines = task_lines(out)
        assert sorted(lines) == ["007bbfb7", "017c7c7b"]
        for line in lines.values():
            assert line["timeouts"] == 1 and line["errors"] == 0
            assert line["failures"][0]["sample"].endswith("train[0]")
            assert "time limit" in line["failures"][0]["error"]
    # the same worker still serves
    again = run_submit(env, "-i", "007bbfb7", "-q", "--require-broker", "--out", str(tmp_path / "after"))
    assert again.returncode == 0, again.stderr
    assert worker.proc.poll() is None


def test_pool_process_killed_mid_sample_reruns_once(redis_server, tmp_path):
    env = batt_env(redis_server.url, BATT_TEST_SLEEP="1.0")
    w = Worker(env, concurrency=1).start()
    try:
        out = tmp_path / "out"
        proc = subprocess.Popen(
            submit_cmd(
                "-i",
                "007bbfb7",
                "017c7c7b",
                "-b",
                str(BATTS / "dist_sleep.py"),
                "-q",
                "--require-broker",
                "--out",
                str(out),
            ),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: "Task batt.score_sample" in w.text() and " received" in w.text(), 30, what="a sample received")
        pids = w.pool_pids()
        assert pids, "no pool process"
        before = pids[0]
        import os

        os.kill(before, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        lines = task_lines(out)
        assert sorted(lines) == ["007bbfb7", "017c7c7b"]
        assert all(line["errors"] == 0 and line["timeouts"] == 0 for line in lines.values())
        s = summary(out)
        assert s["samples_done"] == s["samples"] == s["ok"]
        assert "WorkerLostError" in w.text() or "exited with 'signal 9" in w.text()
    finally:
        w.stop()


def test_ctrl_c_revokes_pending_samples(redis_server, worker, tmp_path):
    env = batt_env(redis_server.url, BATT_TEST_SLEEP="0.5")
    out = tmp_path / "out"
    ids = IDS[:6]
    proc = subprocess.Popen(
        submit_cmd("-i", *ids, "-b", str(BATTS / "dist_sleep.py"), "-q", "--require-broker", "--out", str(out)),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        lambda: (
            out.exists()
            and any((d / "results.jsonl").exists() and (d / "results.jsonl").read_text() for d in out.iterdir())
        ),
        60,
        what="a first finished task",
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "leaked" not in err
    lines = (run_dir(out) / "results.jsonl").read_text().splitlines()
    assert 1 <= len(lines) < len(ids)
    for raw in lines:
        json.loads(raw)
    s = summary(out)
    assert s["interrupted"] is True
    # the worker stops scoring the abandoned run: within a few seconds no more samples start
    wait_for(
        lambda: "revoked" in worker.text().lower() or "run cancelled" in worker.text(),
        15,
        what="revocation reaching the worker",
    )
    time.sleep(0)  # (no sleeping on purpose: the condition above is the check)


def test_no_worker_warns_and_stops_with_timeout(redis_server, tmp_path):
    env = batt_env(redis_server.url)
    done = run_submit(
        env,
        "-c",
        "1",
        "--require-broker",
        "--no-worker-warn",
        "1",
        "--no-worker-timeout",
        "4",
        "--out",
        str(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "no worker is consuming" in done.stderr
    assert "celery -A batt_tasks worker" in done.stderr


def test_time_limit_beyond_visibility_timeout_refused(redis_server, tmp_path):
    env = batt_env(redis_server.url, BATT_VISIBILITY_TIMEOUT="10")
    done = run_submit(env, "-c", "1", "-t", "30", "--require-broker", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "BATT_VISIBILITY_TIMEOUT" in done.stderr and "Traceback" not in done.stderr


def test_wrong_password_is_a_usage_error(tmp_path):
    from redis_proc import RedisServer

    server = RedisServer(password="right-one").start()
    try:
        env = batt_env(f"redis://:wrong@127.0.0.1:{server.port}")
        done = run_submit(env, "-c", "1", "--out", str(tmp_path))
        assert done.returncode == 2, done.stderr
        assert "credentials" in done.stderr or "password" in done.stderr
        assert "wrong" not in done.stderr.split("error:")[-1].split("(")[0]  # the password is not printed
    finally:
        server.cleanup()


def test_malformed_broker_url_is_a_usage_error(tmp_path):
    env = batt_env("redis://127.0.0.1:notaport")
    env["BATT_BROKER_URL"] = "redis://127.0.0.1:notaport/0"
    done = run_submit(env, "-c", "1", "--out", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "BATT_BROKER_URL" in done.stderr and "Traceback" not in done.stderr


def test_messages_are_self_contained_with_readable_names(redis_server, tmp_path):
    """Read the queued messages straight from Redis: short argsrepr, all a worker needs in the body."""
    import redis

    env = batt_env(redis_server.url)
    done = run_submit(
        env,
        "-i",
        "007bbfb7",
        "--require-broker",
        "--no-worker-warn",
        "1",
        "--no-worker-timeout",
        "2",
        "-t",
        "5",
        "--out",
        str(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    client = redis.Redis.from_url(redis_server.url + "/0")
    raw = client.lrange("batt", 0, -1)
    assert len(raw) == 6  # 5 train + 1 test samples of 007bbfb7
    import base64

    names = set()
    for item in raw:
        envelope = json.loads(item)
        headers = envelope["headers"]
        names.add(headers["argsrepr"])
        assert len(headers["argsrepr"]) < 40 and "[[" not in headers["kwargsrepr"]
        assert headers["timelimit"] == [12.0, 11.0]  # hard, soft: both batt calls (2 × 5 s) + 1 s, + 1 s
        body = json.loads(base64.b64decode(envelope["body"]))
        message = body[0][0]
        assert {"run_id", "task_id", "kind", "index", "S", "input", "expected", "batt", "time_limit"} <= set(message)
        assert message["batt"]["module"] == "batt_tasks.battery" and len(message["S"]) == 5
        assert len(message["batt"]["hash"]) == 64 and len(message["sig"]) == 64
    assert names == {f"007bbfb7 train[{i}]" for i in range(5)} | {"007bbfb7 test[0]"}


def test_collection_keeps_up_with_1000_samples(redis_server, tmp_path):
    """1000+ samples of a zero-work batt through one worker: every one collected, each task once."""
    zero = tmp_path / "zero.py"
    zero.write_text("def batt(task_id, S, I, C, log_path):\n    return [(0, False, 'identity', I)], []\n")
    env = batt_env(redis_server.url)
    w = Worker(env, concurrency=2).start()
    try:
        done = run_submit(env, "-c", "0", "-b", str(zero), "-q", "--require-broker", "--out", str(tmp_path / "o"))
        assert done.returncode == 0, done.stderr
        s = summary(tmp_path / "o")
        assert s["samples"] >= 1000 and s["samples_done"] == s["samples"] == s["ok"]
        assert len(task_lines(tmp_path / "o")) == s["tasks"] == 400
    finally:
        w.stop()


def test_batt_imported_once_per_pool_process(redis_server, tmp_path):
    log = tmp_path / "imports.log"
    env = batt_env(redis_server.url, BATT_TEST_IMPORT_LOG=str(log))
    w = Worker(env, concurrency=1).start()
    try:
        done = run_submit(
            env,
            "-i",
            *IDS[:4],
            "-b",
            str(BATTS / "dist_import_counter.py"),
            "-q",
            "--require-broker",
            "--out",
            str(tmp_path / "o"),
        )
        assert done.returncode == 0, done.stderr
        samples = summary(tmp_path / "o")["samples"]
        assert samples >= 16
        pool = set(w.pool_pids())
        worker_imports = [int(p) for p in log.read_text().split() if int(p) in pool]
        assert worker_imports == [next(iter(pool))], f"{samples} samples, imports in the pool: {worker_imports}"
    finally:
        w.stop()


def test_oversized_result_is_an_error_not_a_flood(redis_server, worker, tmp_path):
    env = batt_env(redis_server.url)
    done = run_submit(
        env, "-i", "007bbfb7", "-b", str(BATTS / "dist_huge.py"), "-q", "--require-broker", "--out", str(tmp_path)
    )
    assert done.returncode == 1, done.stderr
    line = task_lines(tmp_path)["007bbfb7"]
    test_failures = [f for f in line["failures"] if "test" in f["sample"]]
    assert test_failures and "result too large" in test_failures[0]["error"]
    assert "BATT_MAX_RESULT_BYTES" in test_failures[0]["error"]
