"""docker-compose.yml's own commands as a running cluster: redis, worker(s), flower, then the producer.

The commands, environments and healthchecks come from ``docker compose config --format json`` (the
real Compose v2 binary), so changing a command in the compose file changes what runs here. As root
each service runs in its own network namespace and reaches the others by service name; otherwise on
loopback (see compose_cluster.py). Flower is checked through its HTTP API with the configured
credentials and in a real headless Chromium, whose screenshot of the tasks page is kept in the
test's output directory (and copied to ``$BATT_TEST_ARTIFACTS`` when set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from compose_cluster import ComposeCluster, duration_seconds, wait_until
from deploy_support import clean_env, compose_config, parse_dockerfile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CREDENTIALS = "admin:fl0wer-test-pw"
PASSWORD = "redis-test-pw-4f2a9c"
TEST_VARS = {
    "BATT_REDIS_PASSWORD": PASSWORD,
    "BATT_FLOWER_BASIC_AUTH": CREDENTIALS,
    "BATT_SIGNING_KEY": "compose-test-signing-key-7d1e",
    # interpolation variables a user would set in .env: a small pool for a 2-core test machine
    "BATT_WORKER_MAX_CONCURRENCY": "2",
    "BATT_WORKER_MIN_CONCURRENCY": "1",
}
TASK_NAME = "batt.score_sample"
NETNS_REASON = netns.netns_unavailable_reason()
MODES = [
    pytest.param(
        "netns",
        marks=[
            pytest.mark.netns,
            pytest.mark.skipif(NETNS_REASON is not None, reason=f"network namespaces unavailable: {NETNS_REASON}"),
        ],
    ),
    "loopback",
]
HOLD_BATT = '''"""Test batt: holds every sample while the file {hold!r} exists (at most 120 s), then answers."""
import os
import time


def batt(task_id, S, I, C, log_path):
    deadline = time.monotonic() + 120
    while os.path.exists({hold!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(0, False, "identity", I)], []
'''


@pytest.fixture(scope="module", params=MODES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeCluster]:
    """redis, one worker and flower, started from the compose file in dependency order and healthy."""
    mode = request.param
    workdir = tmp_path_factory.mktemp(f"compose-{mode}")
    (workdir / "batts").mkdir()
    config = compose_config(clean_env(**TEST_VARS, BATT_BATTS_DIR=str(workdir / "batts")))
    with ComposeCluster(config, workdir, use_netns=mode == "netns") as c:
        c.start("redis")
        c.start("worker", name="worker-1")
        c.start("flower")
        for name in ("redis", "worker-1", "flower"):
            c.wait_healthy(name)
        # Task events are off by default; Flower turns them on with a broadcast every few seconds, and
        # samples that run before it lands are not in Flower. Wait for the worker to say it arrived.
        wait_until(
            lambda: "Events of group {task} enabled by remote." in c.running["worker-1"].text(),
            90,
            "Flower's enable_events broadcast to reach worker-1",
        )
        c.runs = {}  # type: ignore[attr-defined]
        yield c
        print(f"compose cluster logs: {workdir / 'logs'}")


def _node(c: ComposeCluster, name: str = "worker-1") -> str:
    return f"celery@{c.running[name].hostname}"


def _producer_command(c: ComposeCluster, count: str) -> list[str]:
    """The compose producer's command with its task count replaced (-c -32 → -c COUNT)."""
    cmd = list(c.services["producer"]["command"])
    i = cmd.index("-c")
    cmd[i + 1] = count
    return cmd


def _results_volume(c: ComposeCluster) -> Path:
    (vol,) = [v for v in c.services["producer"]["volumes"] if v["type"] == "volume"]
    return c.workdir / "volumes" / vol["source"]


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def _flower_tasks(c: ComposeCluster, run_id: str) -> dict[str, Any]:
    tasks = c.http_json("/api/tasks?limit=10000", CREDENTIALS)
    return {k: v for k, v in tasks.items() if k.startswith(run_id + ".")}


# --------------------------------------------------------------------------- services as written


def test_redis_runs_its_compose_command_with_password_and_aof(cluster: ComposeCluster) -> None:
    c = cluster
    redis = c.running["redis"]
    assert c.healthcheck("redis").returncode == 0
    # without the right password the healthcheck fails: redis-cli alone would exit 0 on NOAUTH
    wrong = dict(redis.env, REDISCLI_AUTH="not-the-password")
    assert c.healthcheck("redis", env=wrong).returncode != 0
    noauth = {k: v for k, v in redis.env.items() if k != "REDISCLI_AUTH"}
    assert c.healthcheck("redis", env=noauth).returncode != 0
    assert c.redis_cli("CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"
    assert c.redis_cli("CONFIG", "GET", "maxmemory-policy").splitlines()[-1] == "noeviction"
    # AOF files live in the redis-data volume (the image's working directory /data)
    data = c.workdir / "volumes" / "redis-data"
    assert any(p.name.startswith("appendonly") for p in data.iterdir()), list(data.iterdir())
    # Redis rewrote its process title: the password is not in its command line any more
    cmdline = Path(f"/proc/{redis.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert PASSWORD not in cmdline, cmdline


def test_worker_healthcheck_pings_only_its_own_worker(cluster: ComposeCluster) -> None:
    c = cluster
    assert c.healthcheck("worker-1").returncode == 0
    other = dict(c.running["worker-1"].env, HOSTNAME="no-such-container")
    assert c.healthcheck("worker-1", env=other).returncode != 0


def test_image_healthcheck_passes_in_a_worker_container(cluster: ComposeCluster) -> None:
    """The Dockerfile's own HEALTHCHECK (for `docker run` without compose) answers for the running worker."""
    c = cluster
    (instr,) = [i for i in parse_dockerfile().instructions if i.keyword == "HEALTHCHECK"]
    argv = json.loads(instr.args.split(" CMD ", 1)[1])
    done = c.exec("worker-1", argv, timeout=40, cwd=c.host_path("worker", c.container_workdir("worker")))
    assert done.returncode == 0, done.stdout + done.stderr


def test_producer_command_runs_a_job_through_the_cluster(cluster: ComposeCluster) -> None:
    c = cluster
    done = c.run_oneoff("producer", _producer_command(c, "-4"), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = [d for d in _results_volume(c).iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    summary = _summary(runs[0])
    assert summary["mode"] == "distributed"
    assert summary["tasks"] == summary["tasks_done"] == 4
    assert summary["samples"] == summary["samples_done"] == summary["ok"] > 0
    lines = (runs[0] / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    c.runs["first"] = summary  # type: ignore[attr-defined]


def test_documented_submit_command_writes_into_the_results_volume(cluster: ComposeCluster) -> None:
    """``docker compose run --rm producer batt-submit -c -N``: no --out, still lands in the volume."""
    c = cluster
    before = {d.name for d in _results_volume(c).iterdir()}
    done = c.run_oneoff("producer", ["batt-submit", "-c", "-2"], timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    new = [d for d in _results_volume(c).iterdir() if d.name not in before]
    assert len(new) == 1
    assert _summary(new[0])["mode"] == "distributed"


def test_users_batt_from_the_batts_mount_is_scored_by_the_worker(cluster: ComposeCluster) -> None:
    """``docker compose run --rm producer batt-submit -b /batts/mybatt.py``: the batt and its sibling module
    exist only in BATT_BATTS_DIR on the producer's side; the worker scores them from the signed bundle."""
    c = cluster
    batts = c.workdir / "batts"
    (batts / "helper.py").write_text("def transform(I):\n    return tuple(tuple(reversed(r)) for r in I)\n")
    (batts / "mybatt.py").write_text(
        "from helper import transform\n\n\ndef batt(task_id, S, I, C, log_path):\n"
        "    return [(1, False, 'flip', transform(I))], []\n"
    )
    before = {d.name for d in _results_volume(c).iterdir()}
    done = c.run_oneoff("producer", ["batt-submit", "-b", "/batts/mybatt.py", "-c", "-2"], timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (new,) = [d for d in _results_volume(c).iterdir() if d.name not in before]
    summary = _summary(new)
    assert summary["mode"] == "distributed" and summary["samples_done"] == summary["samples"] == summary["ok"]
    assert summary["options"]["batt_code"]["entry"] == "mybatt.py"
    assert "rejected" not in c.running["worker-1"].text()


# --------------------------------------------------------------------------- Flower


def test_flower_shows_the_worker_online_and_the_samples_succeeded(cluster: ComposeCluster) -> None:
    c = cluster
    summary = c.runs["first"]  # type: ignore[attr-defined]
    node = _node(c)

    def worker_online() -> bool:
        data = c.http_json("/workers?json=1&refresh=1", CREDENTIALS)["data"]
        return any(w.get("hostname") == node and w.get("status") is True for w in data)

    wait_until(worker_online, 30, f"Flower to list {node} as online")
    assert node in c.http_json("/api/workers?refresh=1", CREDENTIALS)

    def all_succeeded() -> dict[str, Any] | None:
        tasks = _flower_tasks(c, summary["run_id"])
        done = {k: v for k, v in tasks.items() if v.get("state") == "SUCCESS"}
        return done if len(done) == summary["samples"] else None

    tasks = wait_until(all_succeeded, 30, f"{summary['samples']} SUCCESS samples of run {summary['run_id']} in Flower")
    for uuid, task in tasks.items():
        assert task["name"] == TASK_NAME
        assert task["worker"] == node
        # readable: "<ARC task id> <kind>[<index>]", not the sample's grids
        arc_id = uuid.split(".")[1]
        assert task["args"].strip("'\"").startswith(arc_id + " "), task["args"]
        assert len(task["args"]) < 80
        assert summary["run_id"] in task["kwargs"]


def test_flower_requires_the_credentials_except_for_metrics_and_healthcheck(cluster: ComposeCluster) -> None:
    c = cluster
    for path in ("/api/workers", "/api/tasks", "/tasks", "/"):
        assert c.http(path, None)[0] == 401, path
        assert c.http(path, "admin:wrong-password")[0] == 401, path
    assert c.http("/api/workers", CREDENTIALS)[0] == 200
    # documented in deploy/README.md and docker-compose.yml: these two answer without credentials
    status, body = c.http("/healthcheck", None)
    assert (status, body) == (200, "OK")
    status, body = c.http("/metrics", None)
    assert status == 200 and "flower_" in body


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed; CI must install Debian's package: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def _browser(c: ComposeCluster, chromium: str, profile: Path, *args: str, timeout: float = 90) -> str:
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        "--virtual-time-budget=15000",
        *args,
    ]
    env = clean_env(HOME=str(profile))
    proc = subprocess.run(c.client_argv(argv), capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_browser_logs_in_and_sees_the_worker_on_the_tasks_page(cluster: ComposeCluster, tmp_path: Path) -> None:
    c = cluster
    chromium = _chromium()
    summary = c.runs["first"]  # type: ignore[attr-defined]
    node = _node(c)
    user, password = CREDENTIALS.split(":", 1)
    url = c.flower_url("/tasks").replace("http://", f"http://{user}:{password}@", 1)
    mode = "netns" if c.use_netns else "loopback"
    shot = tmp_path / f"flower-tasks-{mode}.png"
    _browser(c, chromium, tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = _browser(c, chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert node in dom, "the tasks page does not show the worker"
    assert TASK_NAME in dom and "SUCCESS" in dom
    # the rows are the samples, named <run_id>.<ARC task id>.<kind>.<index>, newest first
    known = c.http_json("/api/tasks?limit=10000", CREDENTIALS)
    shown = [uuid for uuid in known if uuid in dom]
    assert len(shown) >= min(10, len(known)), f"only {len(shown)} of {len(known)} samples on the page"
    assert any(uuid.startswith(summary["run_id"]) for uuid in known)
    # without credentials the browser gets no page
    denied = _browser(c, chromium, tmp_path / "profile-denied", "--dump-dom", c.flower_url("/tasks"))
    assert node not in denied
    artifacts = os.environ.get("BATT_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(artifacts) / shot.name)
    print(f"screenshot of Flower's tasks page: {shot}")


def test_flower_keeps_its_history_in_its_volume_across_a_restart(cluster: ComposeCluster) -> None:
    """``--persistent`` with ``--db`` in the flower-data volume: a restarted Flower still lists the run."""
    c = cluster
    summary = c.runs["first"]  # type: ignore[attr-defined]
    code, _ = c.stop("flower")
    assert code == 0, c.running["flower"].text()[-3000:]
    (volume,) = c.services["flower"]["volumes"]
    stored = [p.name for p in (c.workdir / "volumes" / volume["source"]).iterdir()]
    assert any(name.startswith("flower") for name in stored), f"no Flower database in its volume: {stored}"
    c.start("flower")
    c.wait_healthy("flower")
    tasks = _flower_tasks(c, summary["run_id"])
    assert len(tasks) == summary["samples"]
    assert {t["state"] for t in tasks.values()} == {"SUCCESS"}


# --------------------------------------------------------------------------- stop and scale


def test_stop_requeues_unfinished_samples_and_a_new_worker_finishes_them(
    cluster: ComposeCluster, tmp_path: Path
) -> None:
    """``docker compose stop`` on a busy worker: its samples go back to the queue at once (REMAP_SIGTERM)."""
    c = cluster
    hold = tmp_path / "hold"
    hold.write_text("held")
    batt = tmp_path / "hold_batt.py"
    batt.write_text(HOLD_BATT.format(hold=str(hold)))
    cmd = _producer_command(c, "-1")
    i = cmd.index("-c")
    cmd[i : i + 2] = ["-i", "007bbfb7", "-b", str(batt), "-t", "120", "--no-worker-timeout", "120"]
    producer = c.popen_oneoff("producer", cmd, "producer-held")

    def total_samples() -> int | None:
        m = re.search(r"(\d+) samples", producer.text())
        return int(m.group(1)) if m else None

    def held() -> bool:
        if producer.proc.poll() is not None:
            raise AssertionError(f"the producer exited with {producer.proc.returncode}:\n{producer.text()[-3000:]}")
        total = total_samples()
        if total is None:
            return False
        unacked = int(c.redis_cli("HLEN", "unacked"))
        return unacked >= 1 and unacked + int(c.redis_cli("LLEN", "batt")) == total

    wait_until(held, 60, "the worker to take held samples and the producer to publish all of them")
    total = total_samples()
    # Stop once the pool has grown to its maximum and every process holds a sample. A stop that lands
    # while the autoscaler is still forking a pool process can hang Celery's cold shutdown until
    # SIGKILL (celery 5.7, see deploy/README.md); that race is not what this test is about.
    autoscale = next(a for a in c.services["worker"]["command"] if a.startswith("--autoscale="))
    pool_max = int(autoscale.split("=", 1)[1].split(",")[0])
    run_id = re.search(r"(?:run|resume) (\S+): \d+ tasks", producer.text()).group(1)  # type: ignore[union-attr]

    def pool_busy() -> bool:
        tasks = _flower_tasks(c, run_id)
        return sum(1 for t in tasks.values() if t.get("state") == "STARTED") >= min(pool_max, total or 0)

    wait_until(pool_busy, 60, f"{pool_max} held samples STARTED in Flower")
    code, seconds = c.stop("worker-1")
    grace = duration_seconds(c.services["worker"]["stop_grace_period"], 10)
    assert seconds < grace, f"the worker needed {seconds:.1f}s of its {grace:.0f}s grace period"
    assert code is not None
    assert "cold shutdown" in c.running["worker-1"].text().lower()
    # every sample the worker held is back in the queue now, not after BATT_VISIBILITY_TIMEOUT
    assert int(c.redis_cli("HLEN", "unacked")) == 0
    assert int(c.redis_cli("LLEN", "batt")) == total
    assert producer.proc.poll() is None, "the producer waits for the requeued samples"

    # `docker compose up --scale worker=2`: another container of the same service takes over
    c.start("worker", name="worker-2")
    c.wait_healthy("worker-2")
    assert _node(c, "worker-2") != _node(c, "worker-1") or not c.use_netns
    hold.unlink()
    assert producer.proc.wait(120) == 0, producer.text()[-3000:]
    run_dir = next(
        d for d in _results_volume(c).iterdir() if d.is_dir() and _summary(d)["options"].get("batt") == str(batt)
    )
    summary = _summary(run_dir)
    assert summary["samples"] == summary["ok"] > 0


def test_worker_replicas_are_distinct_nodes_in_flower(cluster: ComposeCluster) -> None:
    c = cluster
    if not c.use_netns:
        pytest.skip("on loopback every replica has this machine's host name; netns mode gives each its own")
    c.start("worker", name="worker-3")
    c.wait_healthy("worker-3")
    nodes = {_node(c, "worker-2"), _node(c, "worker-3")}

    def both_online() -> bool:
        data = c.http_json("/workers?json=1&refresh=1", CREDENTIALS)["data"]
        online = {w["hostname"] for w in data if w.get("status") is True}
        return nodes <= online

    wait_until(both_online, 30, f"Flower to list {nodes} online")
    started = time.monotonic()
    for name in ("worker-2", "worker-3"):
        code, _ = c.stop(name)
        assert code is not None
    assert time.monotonic() - started < 60
