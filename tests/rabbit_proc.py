"""A throwaway RabbitMQ node for tests: Debian's ``rabbitmq-server`` on free ports, in its own temp dir.

Never the machine's own node (5672, epmd on 4369): every node here has its own node name
(``bq<pid>x<n>@localhost``), AMQP port, distribution port, management port and **its own epmd port**
(``ERL_EPMD_PORT``), so it shares nothing with another node. Its mnesia, logs, config, pid file,
enabled-plugins file and Erlang cookie (``$HOME/.erlang.cookie``) all live in one temp dir.

Run as root, the node runs as the ``rabbitmq`` user (as Debian's wrapper would make it), so that user
owns the temp dir. The Erlang VM outlives the scripts that start it: :meth:`RabbitServer.stop` stops the
node with ``rabbitmqctl stop`` and, if that fails, kills the pid in its ``RABBITMQ_PID_FILE`` (and the
node's own epmd, found by its port) — only what this object started.

The node has one user with a random password (no ``guest``) and the ``rabbitmq_management`` plugin on a
loopback port, which ``--status`` reads for unacknowledged counts. With ``tls=True`` it also has an AMQPS
listener (:attr:`RabbitServer.tls_port`) whose certificate, for ``localhost`` and ``127.0.0.1``, is signed by
a CA of its own (:attr:`RabbitServer.ca_file`), made with ``openssl`` as deploy/README.md makes Redis's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from redis_proc import free_port, wait_for

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
_counter = itertools.count()


def rabbitmq_unavailable_reason() -> str | None:
    """Why no test node can start here, or None when one can."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "rabbitmq-server is not installed (Debian package rabbitmq-server; .ci/run installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("rabbitmq")
        except KeyError:
            return "there is no rabbitmq user (the Debian package creates it)"
    return None


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, stem: str = "ca") -> Path:
    """A self-signed CA (``stem``.crt/.key in ``directory``), as deploy/README.md makes one; its certificate."""
    subj = f"/CN=batt-queue test {stem}"
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subj,
             "-keyout", f"{stem}.key", "-out", f"{stem}.crt")  # fmt: skip
    return directory / f"{stem}.crt"


def make_server_cert(directory: Path, ca: str = "ca", stem: str = "server") -> Path:
    """A certificate for ``localhost`` and ``127.0.0.1`` signed by ``directory``'s CA ``ca``
    (key: ``stem``.key); its path."""
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", f"{stem}.key", "-out", f"{stem}.csr")  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(directory, "x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", f"{stem}.crt")  # fmt: skip
    return directory / f"{stem}.crt"


def require_rabbitmq() -> None:
    """Skip the calling test (or, under CI=true, fail it) when no RabbitMQ test node can start here."""
    import pytest

    reason = rabbitmq_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the RabbitMQ tests, but: {reason}")
    pytest.skip(reason)


class RabbitServer:
    """A rabbitmq-server node; ``start()``/``stop()`` can be repeated (the durable queues keep their messages)."""

    def __init__(
        self,
        consumer_timeout_ms: int | None = None,
        management: bool = True,
        wrap: Callable[[list[str]], list[str]] | None = None,
        bind: str = "127.0.0.1",
        tls: bool = False,
    ) -> None:
        """``wrap`` turns a command into one run elsewhere (``Network.command`` of tests/netns.py: a network
        namespace); ``bind`` is the AMQP listener's address (``0.0.0.0`` to serve other namespaces); ``tls`` adds
        an AMQPS listener on ``tls_port`` (clients are not asked for certificates)."""
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.mgmt_port = free_port() if management else None
        self.tls_port = free_port() if tls else None
        self.consumer_timeout_ms = consumer_timeout_ms
        self.wrap = wrap
        self.bind = bind
        self.node = f"bq{os.getpid()}x{next(_counter)}@localhost"
        self.user = "batt"
        self.password = secrets.token_hex(12)
        self.dir = Path(tempfile.mkdtemp(prefix="batt-rabbit-"))
        self._as_rabbit = os.geteuid() == 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_files()

    @property
    def url(self) -> str:
        """The AMQP URL of the node (default vhost)."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}//"

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the AMQPS listener's certificate (``tls=True``)."""
        return self.dir / "tls" / "ca.crt"

    def tls_url(self, amqp_url: str) -> str:
        """``amqp_url`` (of this node, e.g. from :meth:`new_vhost`) as ``amqps://`` on the TLS listener."""
        assert self.tls_port is not None, "started without tls=True"
        return amqp_url.replace("amqp://", "amqps://", 1).replace(f":{self.port}/", f":{self.tls_port}/", 1)

    @property
    def management_url(self) -> str | None:
        return None if self.mgmt_port is None else f"http://127.0.0.1:{self.mgmt_port}"

    def _write_files(self) -> None:
        conf = [
            f"listeners.tcp.default = {self.bind}:{self.port}",
            "loopback_users = none",
            f"default_user = {self.user}",
            f"default_pass = {self.password}",
            "default_permissions.configure = .*",
            "default_permissions.read = .*",
            "default_permissions.write = .*",
            "log.console = false",
            "log.file.level = info",
        ]
        if self.consumer_timeout_ms is not None:
            conf.append(f"consumer_timeout = {self.consumer_timeout_ms}")
        if self.tls_port is not None:
            tls = self.dir / "tls"
            tls.mkdir()
            make_ca(tls)
            make_server_cert(tls)
            conf += [
                f"listeners.ssl.default = {self.bind}:{self.tls_port}",
                f"ssl_options.cacertfile = {tls / 'ca.crt'}",
                f"ssl_options.certfile = {tls / 'server.crt'}",
                f"ssl_options.keyfile = {tls / 'server.key'}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        if self.mgmt_port is not None:
            conf += [f"management.tcp.port = {self.mgmt_port}", "management.tcp.ip = 127.0.0.1"]
        (self.dir / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        plugins = "[rabbitmq_management]." if self.mgmt_port is not None else "[]."
        (self.dir / "enabled_plugins").write_text(plugins + "\n")
        cookie = self.dir / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        if self._as_rabbit:
            user = pwd.getpwnam("rabbitmq")
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
            self.dir.chmod(0o700)

    def env(self) -> dict[str, str]:
        """The environment of the node and of the CLI tools that talk to it."""
        d = str(self.dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": d,  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/advanced.config",
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_PID_FILE": f"{d}/rabbit.pid",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_PLUGINS_EXPAND_DIR": f"{d}/plugins-expand",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        return env

    def _popen_kwargs(self) -> dict[str, object]:
        kw: dict[str, object] = {"env": self.env(), "cwd": str(self.dir)}
        if self._as_rabbit and self.wrap is None:
            kw.update(user="rabbitmq", group="rabbitmq", extra_groups=[])
        return kw

    def _argv(self, argv: list[str]) -> list[str]:
        """``argv`` as run: as the rabbitmq user (when root), inside ``wrap`` (which needs root) when given."""
        if self.wrap is None:
            return argv
        if self._as_rabbit:
            argv = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--clear-groups", "--", *argv]
        return self.wrap(argv)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against this node."""
        return subprocess.run(
            self._argv([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args]),
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._popen_kwargs(),  # type: ignore[arg-type]
        )

    def start(self, timeout: float = 120) -> RabbitServer:
        # the node's own epmd, on its own port, started first (the VM would start one itself, racing it)
        subprocess.run(self._argv(["epmd", "-daemon"]), check=True, timeout=30, **self._popen_kwargs())  # type: ignore[arg-type]
        log = open(self.dir / "server.out", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self._argv([str(RABBIT_BIN / "rabbitmq-server")]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._popen_kwargs(),  # type: ignore[arg-type]
        )
        log.close()
        if self.wrap is not None:  # elsewhere: the node's own CLI, run there, says when it is up
            wait_for(
                lambda: self.proc.poll() is not None or self.ctl("await_startup", timeout=60).returncode == 0,
                timeout,
                1.0,
                f"rabbitmq node {self.node}",
            )
            if self.proc.poll() is not None and self._vm_pid() is None:
                raise RuntimeError(f"rabbitmq-server exited:\n{self.log_text()[-3000:]}")
            return self
        wait_for(lambda: self.ping() or self.proc.poll() is not None, timeout, 0.25, f"rabbitmq node {self.node}")
        if not self.ping():
            raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        done = self.ctl("await_startup", timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl await_startup failed: {done.stdout}{done.stderr}")
        if self.mgmt_port is not None:
            wait_for(lambda: _listening(self.mgmt_port), 60, 0.25, "the management listener")
        if self.tls_port is not None:
            wait_for(lambda: _listening(self.tls_port), 60, 0.25, "the AMQPS listener")
        return self

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        """Call the management API (JSON) as the node's user."""
        import base64
        import json
        import urllib.request

        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.management_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def new_vhost(self, name: str) -> str:
        """Create a virtual host the node's user may use fully, so a test has queues of its own; its AMQP URL."""
        self.api("PUT", f"/api/vhosts/{name}", {})
        self.api("PUT", f"/api/permissions/{name}/{self.user}", {"configure": ".*", "write": ".*", "read": ".*"})
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def queue(self, vhost: str, name: str) -> dict:
        """The management API's view of a queue."""
        return self.api("GET", f"/api/queues/{vhost}/{name}")  # type: ignore[return-value]

    def ping(self) -> bool:
        """Whether the AMQP listener accepts a connection and speaks AMQP."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1) == b"\x01"  # the start of a Connection.Start frame
        except OSError:
            return False

    def log_text(self) -> str:
        parts = []
        for path in [self.dir / "server.out", *sorted((self.dir / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def _vm_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.dir / "rabbit.pid").read_text().strip())
        return None

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``, else SIGTERM/SIGKILL of its VM); its data stays for a restart."""
        pid = self._vm_pid()
        if self.proc is None and pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        if pid is not None:
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not _alive(pid), 30, 0.1, "the node's VM to exit")
            if _alive(pid):
                _kill(pid, signal.SIGKILL)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the node's VM (a crash)."""
        pid = self._vm_pid()
        if pid is not None:
            _kill(pid, signal.SIGKILL)
            wait_for(lambda: not _alive(pid), 10, 0.05, "the killed VM to go")
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        (self.dir / "rabbit.pid").unlink(missing_ok=True)

    def _stop_epmd(self) -> None:
        """Stop the epmd this node started on its own port (never the machine's, which uses another port)."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                self._argv(["epmd", "-port", str(self.epmd_port), "-kill"]),
                capture_output=True,
                timeout=10,
                env=self.env(),
            )

    def cleanup(self) -> None:
        self.stop()
        self._stop_epmd()
        shutil.rmtree(self.dir, ignore_errors=True)


def _listening(port: int | None) -> bool:
    if port is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_stopped(server: RabbitServer, timeout: float = 30) -> None:
    """Wait until the node's AMQP port no longer answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.ping():
        time.sleep(0.1)
