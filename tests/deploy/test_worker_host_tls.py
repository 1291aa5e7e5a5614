"""A bare-metal worker host joining the broker over TLS, as deploy/README.md tells it, with the systemd unit's command.

- the certificates are made with the ``openssl`` commands of deploy/README.md ("Securing Redis");
- Redis runs the command of ``docker-compose.yml`` + ``deploy/compose.broker-tls.yml`` (plain port for
  the compose network, TLS port for other hosts), resolved by ``docker compose config``;
- the worker runs ``batt-worker.service``'s ``ExecStart`` with the unit's ``Environment=`` defaults and
  ``deploy/systemd/batt-queue.env.example`` (its placeholders filled in) as the ``EnvironmentFile``,
  expanded the way systemd does; the producer reaches the broker with the same ``rediss://`` URLs;
- ``KillSignal=SIGTERM`` is a warm shutdown: the running sample finishes, then the worker exits 0.

As root the broker, the worker host and the producer are separate network namespaces; otherwise loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import netns
import pytest
from compose_cluster import BIN_DIR, wait_until
from deploy_support import COMPOSE_FILE, OVERRIDES, REPO, clean_env, compose_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "tls-test-pw-7d1e"
UNIT = REPO / "deploy" / "systemd" / "batt-worker.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "batt-queue.env.example"
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
HOLD_BATT = '''"""Test batt: holds every sample while {hold!r} exists (at most 120 s)."""
import json
import os
import time


def batt(task_id, S, I, C, log_path):
    deadline = time.monotonic() + 120
    while os.path.exists({hold!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(0, False, "identity", I)], []
'''


def readme_tls_commands(host: str) -> list[str]:
    """The certificate commands of deploy/README.md's TLS recipe, for broker host name ``host``."""
    text = (REPO / "deploy" / "README.md").read_text()
    section = text.split("## Securing Redis", 1)[1].split("\n## ", 1)[0]
    cmds = [line.strip() for line in section.splitlines() if line.strip().startswith(("openssl ", "printf "))]
    assert len(cmds) == 4, cmds
    return [c.replace("broker.example.org", host).replace("rsa:3072", "rsa:2048") for c in cmds]


def systemd_unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` → values of a unit file."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def systemd_environment(unit: Mapping[str, list[str]], env_file_text: str) -> dict[str, str]:
    """``Environment=`` defaults overridden by the ``EnvironmentFile`` (systemd's order)."""
    env: dict[str, str] = {}
    for item in unit.get("Service.Environment", []):
        for word in shlex.split(item):
            key, _, value = word.partition("=")
            env[key] = value
    for line in env_file_text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip().strip('"')
    return env


def systemd_exec_argv(exec_start: str, env: Mapping[str, str], hostname: str) -> list[str]:
    """ExecStart split and expanded like systemd: ``${VAR}`` inside words, ``%H`` host name, ``%%``."""
    words = shlex.split(exec_start)
    out = []
    for word in words:
        word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word)
        word = word.replace("%H", hostname).replace("%%", "%")
        out.append(word)
    return out


@dataclass
class Hosts:
    """Where the broker, the worker host and the producer run, and how to start processes there."""

    net: netns.Network | None
    broker: str  # the host name clients use for the broker

    def popen(
        self, host: str, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path, hostname: str | None = None
    ) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            if self.net is not None:
                return self.net.popen(
                    host, argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, hostname=hostname
                )
            return subprocess.Popen(
                argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def run(
        self, host: str, argv: list[str], env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        if self.net is not None:
            return self.net.run(host, argv, env=env, timeout=timeout)
        return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=MODES)
def hosts(request: pytest.FixtureRequest) -> Iterator[Hosts]:
    if request.param == "netns":
        with netns.Network() as net:
            for name in ("broker", "workerhost", "submitter"):
                net.add_host(name)
            yield Hosts(net, "broker")
    else:
        yield Hosts(None, "localhost")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_systemd_worker_over_tls_shuts_down_warm(hosts: Hosts, tmp_path: Path) -> None:
    # --- certificates, as the README makes them
    tls = tmp_path / "tls"
    tls.mkdir()
    for cmd in readme_tls_commands(hosts.broker):
        done = subprocess.run(["sh", "-c", cmd], cwd=tls, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{cmd}: {done.stderr}"
    assert {"ca.crt", "redis.crt", "redis.key"} <= {p.name for p in tls.iterdir()}

    # --- the broker: compose's redis command with the TLS override, as compose resolves it
    cfg = compose_config(
        clean_env(
            BATT_REDIS_PASSWORD=PASSWORD,
            BATT_FLOWER_BASIC_AUTH="x:y",
            BATT_SIGNING_KEY="k" * 32,
            BATT_REDIS_TLS_DIR=str(tls),
        ),
        (COMPOSE_FILE, OVERRIDES["broker-tls"]),
        profiles=(),
    )
    redis_svc = cfg["services"]["redis"]
    (tls_mount,) = [v for v in redis_svc["volumes"] if v["type"] == "bind"]
    assert Path(tls_mount["source"]) == tls
    (published,) = redis_svc["ports"]
    tls_port = int(published["target"])
    argv = [a.replace(tls_mount["target"] + "/", str(tls) + "/") for a in redis_svc["command"]]
    argv[0] = "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else "redis-server"
    plain_port = 6379
    if hosts.net is None:  # loopback: free ports instead of the container's own
        plain_port, new_tls = _free_port(), _free_port()
        argv[argv.index("--tls-port") + 1] = str(new_tls)
        tls_port = new_tls
        argv += ["--port", str(plain_port), "--bind", "127.0.0.1"]
    data = tmp_path / "redis-data"
    data.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    base_env = clean_env(
        PATH=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        HOME=str(tmp_path),
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis = hosts.popen("broker", argv, base_env, logs / "redis.log", data)
        procs.append(redis)

        # --- the worker host: the systemd unit's ExecStart with the example environment file
        url = f"rediss://:{PASSWORD}@{hosts.broker}:{tls_port}"
        env_text = ENV_EXAMPLE.read_text()
        env_text = env_text.replace(":CHANGE-ME@broker.example.org:6380", f":{PASSWORD}@{hosts.broker}:{tls_port}")
        env_text = env_text.replace("/etc/batt-queue/ca.crt", str(tls / "ca.crt"))
        env_text = re.sub(r"^BATT_WORKER_MAX_CONCURRENCY=.*$", "BATT_WORKER_MAX_CONCURRENCY=1", env_text, flags=re.M)
        assert "CHANGE-ME@" not in env_text
        unit = systemd_unit(UNIT)
        worker_env = {**base_env, **systemd_environment(unit, env_text)}
        assert worker_env["BATT_BROKER_URL"].startswith(url + "/0?ssl_cert_reqs=required")
        node_host = "workerhost" if hosts.net is not None else socket.gethostname()
        exec_argv = systemd_exec_argv(unit["Service.ExecStart"][0], worker_env, node_host)
        assert exec_argv[0] == "/opt/batt-queue/venv/bin/celery"
        exec_argv[0] = str(Path(BIN_DIR) / "celery")
        assert "--autoscale=1,1" in exec_argv
        workdir = tmp_path / "var-lib-batt-queue"
        workdir.mkdir()
        assert unit["Service.KillSignal"] == ["SIGTERM"] and unit["Service.KillMode"] == ["mixed"]

        def start_worker(tag: str) -> subprocess.Popen[bytes]:
            proc = hosts.popen(
                "workerhost",
                exec_argv,
                worker_env,
                logs / f"worker-{tag}.log",
                workdir,
                hostname=node_host if hosts.net is not None else None,
            )
            procs.append(proc)
            wait_until(
                lambda: proc.poll() is not None or " ready." in (logs / f"worker-{tag}.log").read_text(),
                60,
                "the systemd worker to be ready",
            )
            assert proc.poll() is None, (logs / f"worker-{tag}.log").read_text()[-3000:]
            return proc

        worker = start_worker("1")
        log1 = (logs / "worker-1.log").read_text()
        assert f"celery@{node_host} ready." in log1 and "rediss://" in log1

        # --- the producer, from its own machine, with the same TLS settings
        hold = tmp_path / "hold"
        hold.write_text("held")
        batt = tmp_path / "hold_batt.py"
        batt.write_text(HOLD_BATT.format(hold=str(hold)))
        producer_env = {
            **base_env,
            "BATT_BROKER_URL": worker_env["BATT_BROKER_URL"],
            "BATT_RESULT_BACKEND": worker_env["BATT_RESULT_BACKEND"],
            "BATT_SIGNING_KEY": worker_env["BATT_SIGNING_KEY"],  # the producer holds the workers' key
        }
        out = tmp_path / "runs"
        producer = hosts.popen(
            "submitter",
            [
                "batt-submit",
                "-i",
                "007bbfb7",
                "-b",
                str(batt),
                "-t",
                "120",
                "--out",
                str(out),
                "--require-broker",
                "-q",
            ],
            producer_env,
            logs / "producer.log",
            tmp_path,
        )
        procs.append(producer)
        redis_cli = ["redis-cli", "-p", str(plain_port), "-a", PASSWORD, "--no-auth-warning"]

        def unacked() -> int:
            done = hosts.run("broker", [*redis_cli, "HLEN", "unacked"], base_env, timeout=20)
            assert done.returncode == 0, done.stderr
            return int(done.stdout.strip() or 0)

        wait_until(lambda: unacked() >= 1 or producer.poll() is not None, 60, "the worker to take a sample")
        assert producer.poll() is None, (logs / "producer.log").read_text()[-3000:]

        # --- systemctl stop: KillSignal=SIGTERM to the main process (KillMode=mixed): a warm shutdown
        worker.send_signal(getattr(signal, unit["Service.KillSignal"][0]))
        time.sleep(2)
        assert worker.poll() is None, "a warm shutdown waits for the running sample"
        assert (
            "Warm shutdown" in (logs / "worker-1.log").read_text()
            or "warm shutdown" in (logs / "worker-1.log").read_text().lower()
        )
        hold.unlink()
        assert worker.wait(60) == 0, (logs / "worker-1.log").read_text()[-3000:]
        # samples it had not started went back to the queue; Restart=always brings a worker back
        start_worker("2")
        assert producer.wait(120) == 0, (logs / "producer.log").read_text()[-3000:]
        (run,) = [d for d in out.iterdir() if d.is_dir()]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["mode"] == "distributed"
        assert summary["samples"] == summary["ok"] > 0
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if sys.exc_info()[0] is not None:
            print(f"logs: {logs}")
