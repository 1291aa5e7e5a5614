"""A small network-namespace harness: several "hosts" on one machine, joined by a private bridge.

Tests use it to run real processes on separate network stacks that reach each other by service
name (``redis``, ``worker`` …), and to cut and restore one host's link. It needs root and
``ip`` from iproute2; :func:`netns_unavailable_reason` says why it cannot run elsewhere.

Layout of one :class:`Network` (every name starts with ``bq-<pid>-<n>-`` so concurrent runs and
other software never collide with it)::

    namespace bq-<pid>-<n>-hub        bridge br0, one veth end v<i> per host (no addresses)
    namespace bq-<pid>-<n>-<host>     lo + eth0 (the other veth end) with 10.<a>.<b>.<i>/24

Nothing is added to the root namespace: the bridge and both ends of every veth pair are created
directly inside the network's own namespaces, and the addresses live only there, so no traffic can
leave the machine and the root namespace's links and routes are never touched. Each host gets
``/etc/netns/<namespace>/hosts`` mapping every host's name (and aliases) to its address;
``ip netns exec`` bind-mounts it over ``/etc/hosts`` for the processes it starts.

:meth:`Network.close` (also run by ``with``-exit, after an exception too, and at interpreter exit)
kills every process inside the network's namespaces, deletes the namespaces (which deletes the
veths and the bridge with them) and removes the ``/etc/netns`` entries it wrote. :func:`reap_stale`
removes what a killed earlier run (``bq-<pid>-…`` with that pid no longer alive) left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "bq-"
NETNS_ETC = Path("/etc/netns")
NETNS_RUN = Path("/run/netns")
_counter = itertools.count()
_open_networks: weakref.WeakSet[Network] = weakref.WeakSet()
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class NetnsError(RuntimeError):
    """An ``ip`` command of the harness failed; the message carries its output."""


def _ip(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise NetnsError(f"ip {' '.join(args)} failed ({proc.returncode}): {output}")
    return proc


def netns_unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or ``None`` when they can.

    Checks root, the ``ip`` tool, ``unshare``, and actually creates and deletes one namespace.
    """
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip tool (Debian package iproute2) is not installed"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe{next(_counter)}"
    proc = _ip("netns", "add", probe, check=False)
    if proc.returncode != 0:
        return f"ip netns add failed: {proc.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of the existing network namespaces whose name starts with ``prefix``."""
    proc = _ip("netns", "list", check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(ns: str, deadline_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process living in namespace ``ns`` (they are the harness's own)."""

    def pids() -> list[int]:
        proc = _ip("netns", "pids", ns, check=False)
        return [int(p) for p in proc.stdout.split() if p.isdigit() and int(p) != os.getpid()]

    current = pids()
    if not current:
        return
    for pid in current:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        current = pids()
        if not current:
            return
        time.sleep(0.05)
    for pid in current:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while pids() and time.monotonic() < deadline:
        time.sleep(0.05)


def _delete_namespace(ns: str) -> None:
    _kill_namespace_processes(ns)
    _ip("netns", "del", ns, check=False)
    etc = NETNS_ETC / ns
    if etc.is_dir():
        shutil.rmtree(etc, ignore_errors=True)


def _remove_empty_netns_etc() -> None:
    with contextlib.suppress(OSError):
        NETNS_ETC.rmdir()  # only succeeds when empty, i.e. nobody else keeps files there


def reap_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces named ``<prefix><pid>-…`` whose creating process ``pid`` is dead.

    Only names in the harness's own scheme are considered, and only those whose owner is gone, so
    a concurrently running test session keeps its namespaces. Returns the names removed.
    """
    removed: list[str] = []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    candidates = set(list_namespaces(prefix))
    if NETNS_ETC.is_dir():
        candidates.update(p.name for p in NETNS_ETC.iterdir() if p.name.startswith(prefix))
    for ns in sorted(candidates):
        m = pattern.match(ns)
        if not m or _pid_alive(int(m.group(1))):
            continue
        _delete_namespace(ns)
        removed.append(ns)
    if removed:
        _remove_empty_netns_etc()
    return removed


@dataclass
class Host:
    """One simulated machine: a namespace with one link to the network's bridge."""

    name: str
    ns: str
    address: str
    aliases: tuple[str, ...]
    bridge_port: str  # the veth end on the bridge, in the hub namespace
    link: str = "eth0"  # the veth end inside the host's namespace

    @property
    def hosts_file(self) -> Path:
        """The file ``ip netns exec`` shows to this host's processes as ``/etc/hosts``."""
        return NETNS_ETC / self.ns / "hosts"


@dataclass(eq=False)
class Network:
    """A private bridge with hosts in their own network namespaces; use as a context manager.

    ``subnet`` is only ever configured inside the network's own namespaces (default a private
    /24; it is never routed anywhere, so it cannot clash with the machine's networks).
    """

    subnet: str = "10.213.7.0/24"
    prefix: str = PREFIX
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tag = f"{self.prefix}{os.getpid()}-{next(_counter)}-"
        self.hub = f"{self.tag}hub"
        self._net = ipaddress.ip_network(self.subnet)
        self._addresses = itertools.islice(self._net.hosts(), 1, None)  # .1 left free, as a gateway would be
        self._namespaces: list[str] = []
        self._closed = False
        self._started = False

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Create the hub namespace and its bridge."""
        if self._started:
            return
        reason = netns_unavailable_reason()
        if reason:
            raise NetnsError(reason)
        _open_networks.add(self)
        self._started = True
        self._add_namespace(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        _ip("-n", self.hub, "link", "set", "lo", "up")

    def _add_namespace(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._namespaces.append(ns)

    def close(self) -> None:
        """Kill every process in the network, delete its namespaces and /etc/netns entries. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for proc in self.processes:
            _terminate(proc)
        for ns in reversed(self._namespaces):
            _delete_namespace(ns)
        _remove_empty_netns_etc()
        _open_networks.discard(self)

    # ----------------------------------------------------------------- hosts
    def add_host(self, name: str, aliases: Sequence[str] = ()) -> Host:
        """Create host ``name`` (a DNS-style label) with its link up and every hosts file refreshed."""
        if not self._started:
            self.start()
        if self._closed:
            raise NetnsError("network is closed")
        for label in (name, *aliases):
            if not _NAME_RE.match(label):
                raise ValueError(f"host name {label!r} must match {_NAME_RE.pattern}")
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        try:
            address = str(next(self._addresses))
        except StopIteration:
            raise NetnsError(f"subnet {self.subnet} is full") from None
        host = Host(
            name=name,
            ns=f"{self.tag}{name}",
            address=address,
            aliases=tuple(aliases),
            bridge_port=f"v{len(self.hosts)}",
        )
        self._add_namespace(host.ns)
        # Both veth ends are created inside our namespaces: the root namespace never sees them.
        _ip(
            "-n", self.hub, "link", "add", host.bridge_port, "type", "veth", "peer", "name", host.link, "netns", host.ns
        )
        _ip("-n", self.hub, "link", "set", host.bridge_port, "master", "br0")
        _ip("-n", self.hub, "link", "set", host.bridge_port, "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        _ip("-n", host.ns, "addr", "add", f"{address}/{self._net.prefixlen}", "dev", host.link)
        _ip("-n", host.ns, "link", "set", host.link, "up")
        self.hosts[name] = host
        self._write_hosts_files()
        return host

    def _write_hosts_files(self) -> None:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{h.address}\t{' '.join((h.name, *h.aliases))}" for h in self.hosts.values()]
        text = "\n".join(lines) + "\n"
        for host in self.hosts.values():
            host.hosts_file.parent.mkdir(parents=True, exist_ok=True)
            # Rewrite in place: a process that already runs sees the file through a bind mount
            # of this inode, so replacing the file would hide the update from it.
            with open(host.hosts_file, "w", encoding="ascii") as fh:
                fh.write(text)

    def host(self, name: str) -> Host:
        """The host called ``name``."""
        return self.hosts[name]

    # ----------------------------------------------------------------- processes
    def command(self, host: str, argv: Sequence[str], hostname: str | None = None) -> list[str]:
        """The argv that runs ``argv`` in ``host``'s namespace (and, with ``hostname``, its own UTS name)."""
        ns = self.hosts[host].ns
        cmd = ["ip", "netns", "exec", ns]
        if hostname is not None:
            cmd += ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        return cmd + list(argv)

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        *,
        hostname: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` on ``host`` in its own session; :meth:`close` kills it if the caller does not."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(
            self.command(host, argv, hostname), env=dict(env) if env is not None else None, **kwargs
        )
        self.processes.append(proc)
        return proc

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float,
        hostname: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` on ``host`` to completion (killed after ``timeout`` seconds)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(
            self.command(host, argv, hostname), env=dict(env) if env is not None else None, timeout=timeout, **kwargs
        )

    # ----------------------------------------------------------------- faults
    def cut(self, host: str) -> None:
        """Take ``host``'s bridge port down: its packets are dropped, as when a cable is pulled.

        The host keeps its own address and link, so its connections hang rather than fail at once.
        """
        _ip("-n", self.hub, "link", "set", self.hosts[host].bridge_port, "down")

    def restore(self, host: str) -> None:
        """Bring ``host``'s bridge port back up after :meth:`cut`."""
        _ip("-n", self.hub, "link", "set", self.hosts[host].bridge_port, "up")

    def link_is_up(self, host: str) -> bool:
        """Whether ``host``'s bridge port is administratively up."""
        out = _ip("-n", self.hub, "-o", "link", "show", self.hosts[host].bridge_port).stdout
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
        return "UP" in flags

    def namespaces(self) -> list[str]:
        """Every namespace this network created (hub first)."""
        return list(self._namespaces)


def _terminate(proc: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def root_links() -> list[str]:
    """Names of the links in the root network namespace (to show the harness leaves them alone)."""
    out = _ip("-o", "link", "show").stdout
    return sorted(line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if line.strip())


def iter_open_networks() -> Iterator[Network]:
    """Networks of this process that are not closed yet."""
    return iter(list(_open_networks))


@atexit.register
def _close_all() -> None:
    for net in list(_open_networks):
        net.close()
