"""RabbitMQ as the broker (issue 16), against a private rabbitmq-server node and real prefork workers.

One node (with an AMQPS listener too) and one redis-server (the result backend) serve the whole module; each
test takes its own virtual host, so queues never carry one test's messages into another.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from banner_server import banner_server
from rabbit_proc import RabbitServer, make_ca, require_rabbitmq
from redis_proc import free_port, wait_for
from workers import Worker, assert_distributed_equals_local, rabbit_env, run_dir, run_submit, summary

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

IDS = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b", "045e512c", "0520fde7"]
_n = itertools.count()


@pytest.fixture(scope="module")
def rabbit_server() -> Iterator[RabbitServer]:
    """This module's node: conftest's, plus a TLS listener for the amqps:// test."""
    require_rabbitmq()
    server = RabbitServer(tls=True)
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def env(rabbit_server: Any, module_redis: Any) -> dict[str, str]:
    """A fresh vhost and backend db for one test."""
    n = next(_n)
    url = rabbit_server.new_vhost(f"t{n}")
    return rabbit_env(url, rabbit_server.management_url, module_redis.url, db=n % 15)


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[Worker]:
    w = Worker(env, concurrency=2).start()
    yield w
    w.stop()


def test_distributed_equals_local_on_a_quorum_queue(rabbit_server, env, worker, tmp_path):
    out = assert_distributed_equals_local(env, IDS, tmp_path)
    vhost = env["BATT_BROKER_URL"].rsplit("/", 1)[1]
    queue = rabbit_server.queue(vhost, "batt")
    args = queue["arguments"]
    assert args["x-queue-type"] == "quorum" and queue["durable"] is True
    assert args["x-delivery-limit"] == 5 and args["x-dead-letter-exchange"] == "batt.dead"
    assert rabbit_server.queue(vhost, "batt.dead")["arguments"]["x-queue-type"] == "quorum"
    # the run's --status: every sample finished, no traceback; the unacknowledged count comes from the management
    # API, whose statistics lag by up to its collection interval (5 s): "?" until it has them
    total = summary(out)["samples"]
    lines: list[str] = []

    def status_complete() -> bool:
        done = run_submit(env, "--status", run_dir(out).name)
        assert done.returncode == 0, done.stderr
        lines.append(done.stdout)
        return "0 unacknowledged" in done.stdout

    wait_for(status_complete, 60, 1.0, "--status to show the management API's counts")
    assert f"{total}/{total} samples finished, 0 queued or running" in lines[-1], lines[-1]
    assert "queue batt: 0 ready, 0 unacknowledged, 1 consumers" in lines[-1], lines[-1]


def test_amqps_run_equals_local_and_a_wrong_ca_is_a_one_line_error(rabbit_server, env, tmp_path):
    """Over amqps:// (the broker's certificate checked against BATT_BROKER_CA_FILE and the URL's host name) a run
    on a real worker scores every sample as --local does; a producer trusting another CA stops at the broker check
    (exit 2, no fallback to local mode) with one line naming the URL and the fix."""
    url = rabbit_server.tls_url(env["BATT_BROKER_URL"])
    tls = dict(env, BATT_BROKER_URL=url, BATT_BROKER_CA_FILE=str(rabbit_server.ca_file), BATT_BROKER_CHECK_TIMEOUT="10")
    w = Worker(tls, concurrency=2).start()
    try:
        assert_distributed_equals_local(tls, IDS[:2], tmp_path)
    finally:
        w.stop()
    assert f"amqps://batt:**@127.0.0.1:{rabbit_server.tls_port}/" in w.text()  # the worker's banner: its transport
    elsewhere = tmp_path / "other-ca"
    elsewhere.mkdir()
    wrong = dict(tls, BATT_BROKER_CA_FILE=str(make_ca(elsewhere)))
    refused = tmp_path / "w"
    refused.mkdir()
    done = run_submit(wrong, "-i", "007bbfb7", "--out", str(refused), timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"amqps://batt:**@127.0.0.1:{rabbit_server.tls_port}/" in lines[0], lines[0]
    assert "TLS certificate was not accepted" in lines[0] and "set BATT_BROKER_CA_FILE" in lines[0], lines[0]
    assert rabbit_server.password not in lines[0]
    assert list(refused.iterdir()) == []  # refused at the broker check, before any run directory


def test_status_of_queued_samples_and_resume(env, tmp_path):
    """No worker: the run gives up (exit 2), cancelling its samples, which stay in the queue; --status counts them
    as cancelled, with the queue's counts; --resume with a worker submits them again and finishes them."""
    out = tmp_path / "o"
    args = ("-i", "007bbfb7", "--require-broker", "--no-worker-warn", "1", "--no-worker-timeout", "2")
    gave_up = run_submit(env, *args, "--out", str(out), timeout=60)
    assert gave_up.returncode == 2, gave_up.stderr
    run_id = run_dir(out).name
    status = run_submit(env, "--status", run_id)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert "0/6 samples finished, 0 queued or running" in status.stdout, status.stdout
    assert "6 cancelled" in status.stdout, status.stdout
    assert "0 lost" in status.stdout and "queue batt: 6 ready, " in status.stdout and "0 consumers" in status.stdout
    # the run was cancelled when it gave up: --resume submits its samples again, and finishes them
    w = Worker(env, concurrency=2).start()
    try:
        resumed = run_submit(env, "--resume", run_id, timeout=120)
    finally:
        w.stop()
    assert resumed.returncode == 0, resumed.stderr
    assert "6 submitted again" in resumed.stderr, resumed.stderr
    assert summary(out)["samples_done"] == 6


def test_guard_deferral_retries_with_countdown_on_a_quorum_queue(env, tmp_path):
    """Every sample starts under "critical pressure" (100 % of memory must be available), so each is retried
    with a countdown twice (native delayed delivery through the celery_delayed_* queues), then scored."""
    env = dict(env, BATT_GUARD_CRITICAL_AVAILABLE_PCT="100", BATT_GUARD_DEFER_SECONDS="1", BATT_RETRY_MAX="2")
    w = Worker(env, concurrency=2).start()
    try:
        done = run_submit(env, "-i", "007bbfb7", "--require-broker", "-q", "--out", str(tmp_path), timeout=120)
    finally:
        w.stop()
    assert done.returncode == 0, done.stderr
    s = summary(tmp_path)
    assert s["samples_done"] == s["ok"] == 6
    text = w.text()
    assert len(re.findall(r"deferred: .*retry 1/2", text)) == 6, text[-3000:]
    assert len(re.findall(r"deferred: .*retry 2/2", text)) == 6, text[-3000:]
    assert "Direct exchanges are not supported" not in text


def test_broker_check_one_line_errors(rabbit_server, module_redis, env, tmp_path):
    def one_line_error(url: str, *extra: str) -> str:
        e = dict(env, BATT_BROKER_URL=url, BATT_BROKER_CHECK_TIMEOUT="2")
        done = run_submit(e, "-c", "1", "--require-broker", *extra, "--out", str(tmp_path), timeout=60)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        return lines[0]

    good = env["BATT_BROKER_URL"]
    wrong = one_line_error(good.replace(rabbit_server.password, "not-the-password"))
    assert "rejected the credentials" in wrong and "not-the-password" not in wrong
    assert "virtual host 'nowhere'" in one_line_error(good.rsplit("/", 1)[0] + "/nowhere")
    assert "unreachable" in one_line_error(f"amqp://batt:x@127.0.0.1:{free_port()}//")
    silent = one_line_error(f"amqp://batt:x@127.0.0.1:{module_redis.port}//")  # Redis waits for a whole line
    assert "did not answer the AMQP greeting" in silent, silent
    with banner_server(b"SSH-2.0-OpenSSH_9.2\r\n") as port:  # a server that greets first, as SSH does
        other = one_line_error(f"amqp://batt:x@127.0.0.1:{port}//")
    assert "something other than RabbitMQ answers" in other and "SSH-2.0" in other, other
    assert "malformed" in one_line_error("amqp://batt:x@127.0.0.1:notaport//")
    assert list(tmp_path.iterdir()) == []


def test_time_limits_are_the_consumer_timeout_s_not_the_visibility_timeout_s(env, worker, tmp_path):
    """RabbitMQ has no visibility timeout (a -t beyond it runs), but warns beyond its consumer timeout."""
    e = dict(env, BATT_VISIBILITY_TIMEOUT="5", BATT_BROKER_CONSUMER_TIMEOUT="10")
    done = run_submit(e, "-i", "007bbfb7", "-t", "8", "--require-broker", "-q", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "beyond the broker's consumer_timeout (10 s, BATT_BROKER_CONSUMER_TIMEOUT)" in done.stderr, done.stderr
    assert "BATT_VISIBILITY_TIMEOUT" not in done.stderr


def test_a_classic_batt_queue_from_before_is_a_one_line_error(env, tmp_path):
    """A ``batt`` queue declared otherwise (Celery's default classic queue, another delivery limit) is refused by
    RabbitMQ; the producer says how to replace it, in one line, before submitting anything."""
    from kombu import Connection, Queue

    with Connection(env["BATT_BROKER_URL"]) as conn:
        Queue("batt", routing_key="batt")(conn.channel()).declare()  # a classic queue, as Celery's default makes
    done = run_submit(env, "-i", "007bbfb7", "--require-broker", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "a queue exists with other arguments" in lines[0] and "delete_queue" in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # refused at the broker check, before any run directory


def test_flower_shows_the_samples_of_a_run_on_rabbitmq(env, worker, tmp_path):
    """Flower, pointed at RabbitMQ like the workers, lists every sample of a run by name and state (task events)."""
    import base64
    import json
    import subprocess
    import sys
    import urllib.request

    from workers import ROOT

    port = free_port()
    log = open(tmp_path / "flower.log", "w")  # noqa: SIM115 - closed below
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "batt_tasks", "flower", f"--port={port}", "--address=127.0.0.1"],
        env=dict(env, FLOWER_BASIC_AUTH="u:p"),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    token = base64.b64encode(b"u:p").decode()

    def api(path: str) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def answers() -> bool:
        try:
            return worker.node in api("/api/workers?refresh=1")
        except OSError:
            return False

    try:
        wait_for(answers, 60, 0.5, "Flower to see the worker")
        # task events are off by default; Flower turns them on by a broadcast (over RabbitMQ's pidbox here)
        wait_for(lambda: "enabled by remote" in worker.text(), 60, 0.5, "Flower to enable the worker's task events")
        done = run_submit(env, "-i", "007bbfb7", "--require-broker", "-q", "--out", str(tmp_path / "o"))
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: sum(t.get("state") == "SUCCESS" for t in api("/api/tasks").values()) == 6, 60, 0.5, "6 samples"
        )
        tasks = api("/api/tasks").values()
        assert {t["name"] for t in tasks} == {"batt.score_sample"}
        assert {t["args"] for t in tasks} == {f"007bbfb7 train[{i}]" for i in range(5)} | {"007bbfb7 test[0]"}
    finally:
        flower.terminate()
        flower.wait(15)
        log.close()
