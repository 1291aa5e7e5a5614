"""Self-test of tests/netns.py: hosts reach each other by name, a cut link stops traffic, cleanup is complete."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import netns
import pytest

_REASON = netns.netns_unavailable_reason()


def requires_netns(fn):  # type: ignore[no-untyped-def]
    """Mark a test as root-only netns integration test, skipped with the reason when namespaces are unusable."""
    skip = pytest.mark.skipif(_REASON is not None, reason=f"netns harness unavailable: {_REASON}")
    return pytest.mark.netns(pytest.mark.integration(skip(fn)))


SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from " + socket.gethostname().encode() + b"\n")
    c.close()
"""

CLIENT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        print(c.recv(100).decode().strip())
except OSError as e:
    print(f"error: {e}")
    sys.exit(3)
"""

PORT = 7070


def _connect(net: netns.Network, src: str, dst: str, timeout: float = 1.0) -> subprocess.CompletedProcess[str]:
    return net.run(src, [sys.executable, "-c", CLIENT, dst, str(PORT), str(timeout)], timeout=timeout + 15)


def _wait_for_line(proc: subprocess.Popen[str], expected: str, deadline_s: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if expected in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"process did not print {expected!r} within {deadline_s}s (rc={proc.poll()})")


@requires_netns
def test_hosts_talk_by_name_and_cut_link_stops_traffic() -> None:
    links_before = netns.root_links()
    with netns.Network() as net:
        net.add_host("alpha", aliases=("a",))
        net.add_host("beta")
        assert net.host("alpha").address != net.host("beta").address
        assert "alpha a" in net.host("beta").hosts_file.read_text()
        # nothing was added to the root namespace: the bridge and veths live in the network's own namespaces
        assert netns.root_links() == links_before

        server = net.popen(
            "alpha",
            [sys.executable, "-u", "-c", SERVER, str(PORT)],
            hostname="alpha-host",
            stdout=subprocess.PIPE,
            text=True,
        )
        _wait_for_line(server, "listening", 15)

        ok = _connect(net, "beta", "a")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.strip() == "hello from alpha-host"  # own UTS name inside the namespace

        # the server's port is not reachable from the root namespace: the subnet is not routed here
        root = subprocess.run(
            [sys.executable, "-c", CLIENT, net.host("alpha").address, str(PORT), "0.5"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert root.returncode == 3, root.stdout

        net.cut("alpha")
        assert not net.link_is_up("alpha")
        started = time.monotonic()
        cut = _connect(net, "beta", "alpha", timeout=1.0)
        assert cut.returncode == 3, cut.stdout
        assert "timed out" in cut.stdout  # dropped on the wire, not refused
        assert time.monotonic() - started < 10

        net.restore("alpha")
        assert net.link_is_up("alpha")
        deadline = time.monotonic() + 10
        while True:
            again = _connect(net, "beta", "alpha")
            if again.returncode == 0 or time.monotonic() > deadline:
                break
        assert again.returncode == 0, again.stdout
        namespaces = net.namespaces()
        assert all(ns in netns.list_namespaces() for ns in namespaces)
    assert server.poll() is not None, "close() must kill the processes it started"
    left = set(netns.list_namespaces())
    assert not left.intersection(namespaces)
    assert not any((netns.NETNS_ETC / ns).exists() for ns in namespaces)
    assert netns.root_links() == links_before


@requires_netns
def test_cleanup_after_failure_kills_stray_processes() -> None:
    class Boom(Exception):
        pass

    net = netns.Network()
    with pytest.raises(Boom), net:
        net.add_host("solo")
        # started outside the harness's popen: close() must still find it through `ip netns pids`
        stray = subprocess.Popen(net.command("solo", ["sleep", "300"]), start_new_session=True)
        deadline = time.monotonic() + 10
        while not subprocess.run(
            ["ip", "netns", "pids", net.host("solo").ns], capture_output=True, text=True
        ).stdout.strip():
            assert time.monotonic() < deadline, "sleep never showed up in the namespace"
            time.sleep(0.05)
        raise Boom
    assert stray.wait(timeout=15) is not None
    assert not set(netns.list_namespaces()).intersection(net.namespaces())
    assert not (netns.NETNS_ETC / net.host("solo").ns).exists()


@requires_netns
def test_reap_stale_removes_only_dead_owners() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}-0-ghost"
    mine = f"{netns.PREFIX}{os.getpid()}-999-alive"
    assert not Path(f"/proc/{dead.pid}").exists()
    for ns in (stale, mine):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        (netns.NETNS_ETC / stale).mkdir(parents=True, exist_ok=True)
        removed = netns.reap_stale()
        assert stale in removed
        assert mine not in removed
        assert mine in netns.list_namespaces()
        assert stale not in netns.list_namespaces()
        assert not (netns.NETNS_ETC / stale).exists()
    finally:
        for ns in (stale, mine):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_unavailable_reason_is_explained_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns.netns_unavailable_reason() == "network namespaces need root (ip netns add)"
    with pytest.raises(netns.NetnsError, match="need root"):
        netns.Network().start()
