"""Run docker-compose.yml's services as local processes, exactly as resolved by ``docker compose config``.

:class:`ComposeCluster` takes the resolved compose model (interpolation done by the real Compose v2
binary) and starts each service's ``command`` with its ``environment``, on its working directory,
with its volumes as directories of the test. Healthchecks are run as written, and ``depends_on:
condition: service_healthy`` is honoured by waiting for them.

Two network modes:

- ``netns`` (root): every service (and every worker replica) runs in its own network namespace from
  :mod:`netns`, on the port it uses in a container, and ``/etc/netns/<ns>/hosts`` resolves the service
  names (``redis``, ``flower`` …) as Docker's DNS would. A ``browser`` host stands for the user's machine.
- ``loopback`` (no root): all on 127.0.0.1, with the two things a container network would provide
  rewritten: the host name ``redis`` (and its port) and Flower's port become free loopback ports.

Only what containers provide and a host lacks is translated (paths under volumes, working directory,
image ENV, the container hostname); a broken command, variable or healthcheck in the compose file
breaks the run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netns
from deploy_support import DOCKERFILE, REPO, clean_env, parse_dockerfile, unescape_dollars

REDIS_IMAGE_WORKDIR = "/data"  # WORKDIR of the official redis image
BIN_DIR = str(Path(sys.executable).parent)

HTTP_CLIENT = r"""
import base64, json, sys, urllib.error, urllib.request
url, auth = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(url)
if auth:
    req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    with opener.open(req, timeout=20) as r:
        status, body = r.status, r.read().decode(errors="replace")
except urllib.error.HTTPError as e:
    status, body = e.code, e.read().decode(errors="replace")
print(json.dumps({"status": status, "body": body}))
"""


def duration_seconds(text: str | None, default: float) -> float:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    if not text:
        return default
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(ms|us|h|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's base stage (what every batt-queue container starts with)."""
    env: dict[str, str] = {}
    for instr in parse_dockerfile(DOCKERFILE).instructions:
        if instr.keyword == "ENV":
            for word in shlex.split(instr.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def image_workdir() -> str:
    """The final ``WORKDIR`` of the Dockerfile's runtime stage."""
    workdirs = [i.args for i in parse_dockerfile(DOCKERFILE).in_stage("runtime") if i.keyword == "WORKDIR"]
    return workdirs[-1]


@dataclass
class Running:
    """A started service process and where its output goes."""

    name: str
    service: str
    proc: subprocess.Popen[bytes]
    log: Path
    host: str | None
    hostname: str | None
    env: dict[str, str]
    healthy: bool = False

    def text(self) -> str:
        """The process's output so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ComposeCluster:
    """The compose services as processes; see the module docstring. Use as a context manager."""

    config: dict[str, Any]
    workdir: Path
    use_netns: bool
    running: dict[str, Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.services: dict[str, Any] = self.config["services"]
        self.net: netns.Network | None = netns.Network() if self.use_netns else None
        if self.use_netns:
            self.redis_port, self.flower_port = 6379, 5555
        else:
            from redis_proc import free_port

            self.redis_port, self.flower_port = free_port(), free_port()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ComposeCluster:
        if self.net is not None:
            self.net.start()
            for host in ("redis", "flower", "producer", "browser"):
                self.net.add_host(host)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything still running (SIGTERM, then SIGKILL) and remove the namespaces."""
        for run in reversed(list(self.running.values())):
            self._terminate(run.proc, 15)
        if self.net is not None:
            self.net.close()

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], grace: float) -> int | None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    # ------------------------------------------------------------------ translation
    def rewrite(self, text: str) -> str:
        """Loopback mode only: what Docker's network gives a container, as loopback addresses and ports."""
        if self.use_netns:
            return text
        for old, new in (
            ("@redis:6379", f"@127.0.0.1:{self.redis_port}"),
            ("--port=5555", f"--port={self.flower_port}"),
            ("127.0.0.1:5555", f"127.0.0.1:{self.flower_port}"),
        ):
            text = text.replace(old, new)
        return text

    def container_workdir(self, service: str) -> str:
        """The working directory a container of ``service`` starts in."""
        svc = self.services[service]
        if svc.get("working_dir"):
            return str(svc["working_dir"])
        return image_workdir() if "build" in svc else REDIS_IMAGE_WORKDIR

    def mounts(self, service: str) -> dict[str, Path]:
        """Container path → host directory, for the service's volumes (named volumes are shared dirs)."""
        out: dict[str, Path] = {}
        for vol in self.services[service].get("volumes", []):
            if vol["type"] == "bind":  # a host directory, as compose resolved it
                out[vol["target"]] = Path(vol["source"])
                continue
            assert vol["type"] == "volume", f"{service}: the test expects named volumes or binds, got {vol}"
            path = self.workdir / "volumes" / vol["source"]
            path.mkdir(parents=True, exist_ok=True)
            out[vol["target"]] = path
        return out

    def rootfs(self, service: str) -> Path:
        """The stand-in for the container's file system: a directory whose volume mount points are symlinks."""
        root = self.workdir / "rootfs" / service
        for target, path in self.mounts(service).items():
            point = root / target.lstrip("/")
            if not point.is_symlink():
                point.parent.mkdir(parents=True, exist_ok=True)
                point.symlink_to(path, target_is_directory=True)
        return root

    def host_path(self, service: str, container_path: str) -> Path:
        """Where a container path of ``service`` lives in the test (through its volumes' symlinks)."""
        return self.rootfs(service) / container_path.lstrip("/")

    def translate_paths(self, service: str, arg: str) -> str:
        """Container paths of ``service``'s volumes and working directory inside ``arg``, as test paths."""
        targets = [*self.mounts(service), self.container_workdir(service)]
        for target in sorted(set(targets), key=len, reverse=True):
            pattern = re.compile(rf"(?<![\w./-]){re.escape(target)}(?=/|$)")
            m = pattern.search(arg)
            if m:
                return arg[: m.start()] + str(self.host_path(service, target)) + arg[m.end() :]
        return arg

    def environment(self, service: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment: this host's basics, the image ENV, then the service's ``environment``."""
        svc = self.services[service]
        env = clean_env()
        for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(proxy, None)
        env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        # the repository's code, as the image installs it (wins over any stale installed copy)
        env["PYTHONPATH"] = str(REPO)
        home = self.workdir / "home" / service
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        if "build" in svc:
            env.update(image_environment())
        for key, value in (svc.get("environment") or {}).items():
            if value is not None:
                env[key] = self.rewrite(str(value))
        env.update(extra or {})
        return env

    def argv(self, service: str, command: Sequence[str] | None = None) -> list[str]:
        """The service's command (or ``command``), with its paths and (loopback) addresses translated."""
        cmd = list(command if command is not None else self.services[service]["command"])
        out = [self.rewrite(self.translate_paths(service, str(a))) for a in cmd]
        if not self.use_netns and service == "redis":
            out += ["--port", str(self.redis_port), "--bind", "127.0.0.1"]
        if not self.use_netns and service == "flower":
            out += ["--address=127.0.0.1"]  # a container listens on its own network only
        return out

    def resolve(self, argv: list[str]) -> list[str]:
        """``redis-server`` from Debian when present (closest to the image), else whatever PATH has."""
        if argv and argv[0] == "redis-server":
            for cand in ("/usr/bin/redis-server", shutil.which("redis-server")):
                if cand and os.access(cand, os.X_OK):
                    return [cand, *argv[1:]]
        return argv

    # ------------------------------------------------------------------ processes
    def start(
        self,
        service: str,
        name: str | None = None,
        command: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        container_hostname: str | None = None,
    ) -> Running:
        """Start a container of ``service`` (``name`` for a further replica), after its dependencies are healthy."""
        name = name or service
        for dep, cond in (self.services[service].get("depends_on") or {}).items():
            assert dep in self.running, f"{service} depends on {dep}, which is not running"
            if cond.get("condition") == "service_healthy":
                self.wait_healthy(dep)
        host = None
        if self.net is not None:
            host = name
            if host not in self.net.hosts:
                self.net.add_host(host)
        env = self.environment(service, extra_env)
        hostname = None
        if "build" in self.services[service]:
            # Docker sets HOSTNAME to the container's hostname (its short id); Celery names the node after it.
            hostname = container_hostname or (uuid.uuid4().hex[:12] if self.use_netns else os.uname().nodename)
            env["HOSTNAME"] = hostname
        cwd = self.host_path(service, self.container_workdir(service))
        cwd.mkdir(parents=True, exist_ok=True)
        argv = self.resolve(self.argv(service, command))
        log = self.workdir / "logs" / f"{name}.log"
        with open(log, "ab") as out:
            if self.net is not None:
                proc = self.net.popen(
                    host or name,
                    argv,
                    hostname=hostname if self.use_netns else None,
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            else:
                proc = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        run = Running(name, service, proc, log, host, hostname, env)
        self.running[name] = run
        return run

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` beside running container ``name`` (its namespace and environment), like ``docker exec``."""
        run = self.running[name]
        use_env = dict(run.env if env is None else env)
        if self.net is not None:
            return self.net.run(run.host or name, list(argv), timeout=timeout, env=use_env, cwd=cwd)
        return subprocess.run(list(argv), env=use_env, cwd=cwd, timeout=timeout, capture_output=True, text=True)

    def run_oneoff(
        self,
        service: str,
        command: Sequence[str],
        timeout: float,
        host: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose run --rm SERVICE COMMAND``: a one-off container, run to completion."""
        svc = self.services[service]
        for dep, cond in (svc.get("depends_on") or {}).items():
            if cond.get("condition") == "service_healthy":
                self.wait_healthy(dep)
        env = self.environment(service, extra_env)
        env["HOSTNAME"] = uuid.uuid4().hex[:12]
        cwd = self.host_path(service, self.container_workdir(service))
        cwd.mkdir(parents=True, exist_ok=True)
        argv = self.argv(service, command)
        if self.net is not None:
            return self.net.run(host or service, argv, timeout=timeout, env=env, cwd=cwd)
        return subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, capture_output=True, text=True)

    def popen_oneoff(
        self,
        service: str,
        command: Sequence[str],
        log_name: str,
        host: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Running:
        """Like :meth:`run_oneoff`, in the background."""
        env = self.environment(service, extra_env)
        cwd = self.host_path(service, self.container_workdir(service))
        cwd.mkdir(parents=True, exist_ok=True)
        argv = self.argv(service, command)
        log = self.workdir / "logs" / f"{log_name}.log"
        with open(log, "ab") as out:
            if self.net is not None:
                proc = self.net.popen(host or service, argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            else:
                proc = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        run = Running(log_name, service, proc, log, host or service, None, env)
        self.running[log_name] = run
        return run

    # ------------------------------------------------------------------ health
    def healthcheck_argv(self, name: str) -> list[str]:
        """The service's healthcheck ``test`` as an argv (``$$`` unescaped as compose does)."""
        test = self.services[self.running[name].service]["healthcheck"]["test"]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", self.rewrite(unescape_dollars(test[1]))]
        assert test[0] == "CMD", test
        return [self.rewrite(unescape_dollars(t)) for t in test[1:]]

    def healthcheck(self, name: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the healthcheck of container ``name`` once, as Docker would inside it."""
        run = self.running[name]
        hc = self.services[run.service]["healthcheck"]
        timeout = duration_seconds(hc.get("timeout"), 30)
        argv = self.healthcheck_argv(name)
        use_env = dict(run.env if env is None else env)
        if not self.use_netns and run.service == "redis":
            # redis-cli's default port is the container's; point a wrapper at this test's port
            shim = self.workdir / "shim"
            shim.mkdir(exist_ok=True)
            cli = shutil.which("redis-cli", path=use_env["PATH"]) or "redis-cli"
            (shim / "redis-cli").write_text(f'#!/bin/sh\nexec {cli} -p {self.redis_port} "$@"\n')
            (shim / "redis-cli").chmod(0o755)
            use_env["PATH"] = f"{shim}{os.pathsep}{use_env['PATH']}"
        cwd = self.host_path(run.service, self.container_workdir(run.service))
        try:
            return self.exec(name, argv, timeout=timeout + 5, env=use_env, cwd=cwd)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(argv, 124, str(exc.stdout or ""), f"healthcheck timed out: {exc}")

    def wait_healthy(self, name: str, deadline_s: float = 90) -> None:
        """Run the healthcheck until it passes (fails on the deadline or when the process exits)."""
        run = self.running[name]
        if run.healthy:
            return
        deadline = time.monotonic() + deadline_s
        last: subprocess.CompletedProcess[str] | None = None
        while time.monotonic() < deadline:
            if run.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {run.proc.returncode}:\n{run.text()[-4000:]}")
            last = self.healthcheck(name)
            if last.returncode == 0:
                run.healthy = True
                return
            time.sleep(0.5)
        detail = f"{last.stdout}{last.stderr}" if last else ""
        raise AssertionError(f"{name} never became healthy within {deadline_s}s: {detail}\n{run.text()[-4000:]}")

    def stop(self, name: str) -> tuple[int | None, float]:
        """``docker compose stop``: the service's stop_signal, SIGKILL after stop_grace_period.

        Returns the exit code and the seconds the container took to stop.
        """
        run = self.running[name]
        svc = self.services[run.service]
        sig = getattr(signal, svc.get("stop_signal") or "SIGTERM")
        grace = duration_seconds(svc.get("stop_grace_period"), 10)
        started = time.monotonic()
        if run.proc.poll() is None:
            run.proc.send_signal(sig)
            try:
                run.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait(10)
        return run.proc.returncode, time.monotonic() - started

    # ------------------------------------------------------------------ clients
    def client_argv(self, argv: Sequence[str], host: str = "browser") -> list[str]:
        """``argv`` as run on the user's machine (the ``browser`` host in netns mode)."""
        if self.net is not None:
            return self.net.command(host, argv)
        return list(argv)

    def flower_url(self, path: str = "/") -> str:
        """Flower's address as the user's machine reaches it."""
        base = "http://flower:5555" if self.use_netns else f"http://127.0.0.1:{self.flower_port}"
        return base + path

    def http(self, path: str, auth: str | None) -> tuple[int, str]:
        """GET Flower ``path`` from the user's machine, with basic auth ``user:password`` or none."""
        argv = self.client_argv([sys.executable, "-c", HTTP_CLIENT, self.flower_url(path), auth or ""])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=40, env=clean_env())
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)
        return int(answer["status"]), str(answer["body"])

    def http_json(self, path: str, auth: str) -> Any:
        """GET a Flower JSON endpoint with credentials."""
        status, body = self.http(path, auth)
        assert status == 200, f"GET {path}: {status} {body[:500]}"
        return json.loads(body)

    def redis_cli(self, *args: str) -> str:
        """A redis-cli command against the compose Redis, from its own container (``docker compose exec``)."""
        argv = ["redis-cli", "-p", str(self.redis_port), "--no-auth-warning", *args]
        proc = self.exec("redis", argv, timeout=20)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def wait_until(predicate: Callable[[], Any], deadline_s: float, what: str, interval: float = 0.3) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval)


def basic_auth_header(credentials: str) -> str:
    """An HTTP basic ``Authorization`` header value."""
    return "Basic " + base64.b64encode(credentials.encode()).decode()
