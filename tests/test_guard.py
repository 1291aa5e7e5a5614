"""Unit tests of the worker guard's pure parts: cgroup/proc readings, the hysteresis policy, thread errors.

cgroup v1 and v2 layouts are written as sample files under a temporary root; the real machine's
cgroup and /proc are read too, and the reading cost is measured. The policy runs on an injected clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from batt_tasks import guard
from batt_tasks.config import ConfigError, settings
from batt_tasks.guard import Policy, Reader, Readings, Thresholds
from batt_tasks.scoring import one_line

MB = 1024 * 1024
GB = 1024 * MB


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_files(root: Path, cgroup: str, threads_by_pid: dict[int, int] | None = None) -> None:
    """The /proc files a Reader needs: self/cgroup, loadavg, threads-max, pid_max, <pid>/stat."""
    write(root, "proc/self/cgroup", cgroup)
    write(root, "proc/loadavg", "0.50 0.40 0.30 3/1200 4242\n")
    write(root, "proc/sys/kernel/threads-max", "100000\n")
    write(root, "proc/sys/kernel/pid_max", "4194304\n")
    for pid, n in (threads_by_pid or {}).items():
        # comm may contain spaces and parentheses; num_threads is the 20th field overall
        fields = ["S", "1", str(pid), str(pid), "0", "-1", "4194560"] + ["0"] * 10 + [str(n)] + ["0"] * 30
        write(root, f"proc/{pid}/stat", f"{pid} (celery (worker) x) " + " ".join(fields) + "\n")


def host(available: int = 8 * GB, total: int = 16 * GB) -> Callable[[], tuple[int, int]]:
    return lambda: (available, total)


# -- cgroup v2 -------------------------------------------------------------------------------------


def test_cgroup_v2_leaf_limit_with_page_cache_subtracted(tmp_path: Path) -> None:
    proc_files(tmp_path, "0::/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")
    leaf = "sys/fs/cgroup/docker/abc"
    write(tmp_path, f"{leaf}/memory.max", f"{1 * GB}\n")
    write(tmp_path, f"{leaf}/memory.high", "max\n")
    write(tmp_path, f"{leaf}/memory.current", f"{800 * MB}\n")
    write(tmp_path, f"{leaf}/memory.stat", f"anon {600 * MB}\nfile {200 * MB}\ninactive_file {100 * MB}\n")
    write(tmp_path, f"{leaf}/pids.max", "500\n")
    write(tmp_path, f"{leaf}/pids.current", "120\n")
    write(tmp_path, "sys/fs/cgroup/docker/memory.max", "max\n")
    write(tmp_path, "sys/fs/cgroup/docker/pids.max", "max\n")

    r = Reader(tmp_path, host_memory=host()).read()
    assert r.memory_source == "cgroup v2"
    assert r.cgroup_version == 2
    assert r.cgroup_limit_mb == pytest.approx(1024)
    assert r.available_mb == pytest.approx(1024 - (800 - 100))  # usage minus inactive page cache
    assert r.available_pct == pytest.approx(100 * 324 / 1024)
    assert r.host_available_mb == pytest.approx(8 * 1024)
    assert (r.cgroup_pids_current, r.cgroup_pids_max) == (120, 500)
    assert r.thread_headroom == 380
    assert r.thread_headroom_limit == "cgroup v2 pids.max"


def test_cgroup_v2_parent_limit_binds_children(tmp_path: Path) -> None:
    proc_files(tmp_path, "0::/kubepods/pod1/ctr\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory pids\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/memory.current", f"{300 * MB}\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/memory.max", f"{2 * GB}\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/memory.current", f"{1900 * MB}\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/memory.stat", "inactive_file 0\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/memory.max", f"{8 * GB}\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/memory.current", f"{3 * GB}\n")

    r = Reader(tmp_path, host_memory=host()).read()
    assert r.cgroup_limit_mb == pytest.approx(2048)
    assert r.available_mb == pytest.approx(148)
    assert r.memory_source == "cgroup v2"


def test_cgroup_v2_namespace_root_and_unlimited(tmp_path: Path) -> None:
    # inside a container with its own cgroup namespace, /proc/self/cgroup says "0::/"
    proc_files(tmp_path, "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/memory.max", "max\n")
    write(tmp_path, "sys/fs/cgroup/memory.current", f"{5 * GB}\n")
    r = Reader(tmp_path, host_memory=host(available=4 * GB, total=16 * GB)).read()
    assert r.memory_source == "host"  # no limit: the host is the only bound
    assert r.cgroup_limit_mb is None
    assert r.available_mb == pytest.approx(4096)
    assert r.available_pct == pytest.approx(25.0)

    write(tmp_path, "sys/fs/cgroup/memory.max", f"{6 * GB}\n")
    r = Reader(tmp_path, host_memory=host(available=4 * GB, total=16 * GB)).read()
    assert r.memory_source == "cgroup v2"
    assert r.available_mb == pytest.approx(1024)


def test_cgroup_v2_host_path_not_visible_falls_back_to_mount(tmp_path: Path) -> None:
    # the container sees the host's path in /proc/self/cgroup, but its own cgroup is mounted at the root
    proc_files(tmp_path, "0::/system.slice/docker-0123.scope\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{512 * MB}\n")
    write(tmp_path, "sys/fs/cgroup/memory.current", f"{256 * MB}\n")
    r = Reader(tmp_path, host_memory=host()).read()
    assert r.cgroup_limit_mb == pytest.approx(512)
    assert r.available_mb == pytest.approx(256)
    assert r.available_pct == pytest.approx(50.0)


def test_host_tighter_than_cgroup_wins(tmp_path: Path) -> None:
    proc_files(tmp_path, "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{8 * GB}\n")
    write(tmp_path, "sys/fs/cgroup/memory.current", f"{1 * GB}\n")
    r = Reader(tmp_path, host_memory=host(available=500 * MB, total=16 * GB)).read()
    assert r.memory_source == "host"
    assert r.available_mb == pytest.approx(500)
    assert r.cgroup_available_mb == pytest.approx(7 * 1024)
    # the percentage is the lower of the two: 500 MB of 16 GB
    assert r.available_pct == pytest.approx(100 * 500 / (16 * 1024))


# -- cgroup v1 -------------------------------------------------------------------------------------

V1_CGROUP = "12:pids:/docker/abc\n5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"


def test_cgroup_v1_limit_usage_and_pids(tmp_path: Path) -> None:
    proc_files(tmp_path, V1_CGROUP)
    mem = "sys/fs/cgroup/memory/docker/abc"
    write(tmp_path, f"{mem}/memory.limit_in_bytes", f"{2 * GB}\n")
    write(tmp_path, f"{mem}/memory.usage_in_bytes", f"{1536 * MB}\n")
    write(
        tmp_path,
        f"{mem}/memory.stat",
        f"cache {600 * MB}\ninactive_file {10 * MB}\nhierarchical_memory_limit 9223372036854771712\n"
        f"total_inactive_file {512 * MB}\n",
    )
    write(tmp_path, "sys/fs/cgroup/pids/docker/abc/pids.max", "max\n")
    write(tmp_path, "sys/fs/cgroup/pids/docker/abc/pids.current", "7\n")
    (tmp_path / "sys/fs/cgroup/cpu,cpuacct").mkdir(parents=True)

    r = Reader(tmp_path, host_memory=host()).read()
    assert r.memory_source == "cgroup v1"
    assert r.cgroup_version == 1
    assert r.cgroup_limit_mb == pytest.approx(2048)
    assert r.available_mb == pytest.approx(2048 - (1536 - 512))
    assert r.available_pct == pytest.approx(50.0)
    assert r.cgroup_pids_max is None  # "max": no limit
    assert r.thread_headroom == 100000 - 1200  # threads-max minus the host's threads (loadavg)
    assert r.thread_headroom_limit == "threads-max"


def test_cgroup_v1_hierarchical_limit_and_unlimited(tmp_path: Path) -> None:
    proc_files(tmp_path, V1_CGROUP)
    mem = "sys/fs/cgroup/memory/docker/abc"
    write(tmp_path, f"{mem}/memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path, f"{mem}/memory.usage_in_bytes", f"{700 * MB}\n")
    write(tmp_path, f"{mem}/memory.stat", f"hierarchical_memory_limit {1 * GB}\ntotal_inactive_file 0\n")
    write(tmp_path, "sys/fs/cgroup/pids/docker/abc/pids.max", "64\n")
    write(tmp_path, "sys/fs/cgroup/pids/docker/abc/pids.current", "60\n")
    r = Reader(tmp_path, host_memory=host()).read()
    assert r.cgroup_limit_mb == pytest.approx(1024)  # a parent's limit, seen through hierarchical_memory_limit
    assert r.available_mb == pytest.approx(324)
    assert r.thread_headroom == 4
    assert r.thread_headroom_limit == "cgroup v1 pids.max"

    write(tmp_path, f"{mem}/memory.stat", "hierarchical_memory_limit 9223372036854771712\n")
    r = Reader(tmp_path, host_memory=host()).read()
    assert r.memory_source == "host"
    assert r.cgroup_limit_mb is None


def test_cgroup_v1_container_sees_host_path(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host's path, the container's memory cgroup is mounted at the controller root
    proc_files(tmp_path, V1_CGROUP)
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{256 * MB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.usage_in_bytes", f"{200 * MB}\n")
    r = Reader(tmp_path, host_memory=host()).read()
    assert r.cgroup_limit_mb == pytest.approx(256)
    assert r.available_mb == pytest.approx(56)


def test_hybrid_host_uses_v1_memory(tmp_path: Path) -> None:
    proc_files(tmp_path, "4:memory:/x\n0::/x\n")
    write(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "\n")
    write(tmp_path, "sys/fs/cgroup/memory/x/memory.limit_in_bytes", f"{1 * GB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/x/memory.usage_in_bytes", f"{100 * MB}\n")
    layout = guard.resolve_cgroups(tmp_path)
    assert layout.memory_version == 1
    assert Reader(tmp_path, host_memory=host()).read().available_mb == pytest.approx(924)


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    r = Reader(tmp_path, host_memory=host(available=1 * GB, total=4 * GB)).read([1])
    assert r.memory_source == "host"
    assert r.available_pct == pytest.approx(25.0)
    assert (r.worker_threads, r.worker_processes, r.host_threads) == (0, 0, 0)
    assert r.thread_headroom is None


def test_parse_proc_cgroup() -> None:
    parsed = guard.parse_proc_cgroup("5:memory:/a\n4:cpu,cpuacct:/b\n0::/c\n1:name=systemd:/d\nbroken\n")
    assert parsed == {"memory": "/a", "cpu": "/b", "cpuacct": "/b", "": "/c", "name=systemd": "/d"}


def test_process_tree_threads_from_proc_stat(tmp_path: Path) -> None:
    proc_files(tmp_path, "0::/\n", threads_by_pid={100: 7, 101: 3, 102: 12})
    r = Reader(tmp_path, host_memory=host()).read([100, 101, 102, 999])  # 999 is gone: skipped
    assert (r.worker_threads, r.worker_processes) == (22, 3)
    assert r.host_threads == 1200


# -- this machine ----------------------------------------------------------------------------------


def test_real_machine_readings() -> None:
    reader = Reader()
    r = reader.read([os.getpid()])
    assert r.available_mb > 0
    assert 0 < r.available_pct <= 100
    assert r.host_total_mb == pytest.approx(psutil.virtual_memory().total / MB)
    if r.cgroup_limit_mb is not None:
        assert r.available_mb <= r.cgroup_limit_mb
    assert r.host_threads > 0
    assert r.thread_headroom is not None and r.thread_headroom > 0
    assert r.worker_processes == 1
    assert r.worker_threads == psutil.Process().num_threads()

    # a real extra thread is counted
    release = threading.Event()
    t = threading.Thread(target=release.wait)
    t.start()
    try:
        assert reader.read([os.getpid()]).worker_threads == r.worker_threads + 1
    finally:
        release.set()
        t.join()
    # the cgroup layout of this machine resolves and reads without error
    layout = guard.resolve_cgroups(Path("/"))
    guard.read_cgroup_memory(layout)
    guard.read_cgroup_pids(layout)


def test_reading_is_cheap() -> None:
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(3)]
    try:
        pids = [os.getpid()] + [c.pid for c in children]
        reader = Reader()
        costs = []
        for _ in range(300):
            started = time.perf_counter()
            r = reader.read(pids)
            costs.append(time.perf_counter() - started)
        costs.sort()
        median_ms = costs[len(costs) // 2] * 1000
        assert r.worker_processes == 4
        assert median_ms < 10.0, f"median reading cost {median_ms:.3f} ms"
        assert r.read_ms < 50.0
    finally:
        for c in children:
            c.kill()
            c.wait()


def test_reader_cache_is_per_process() -> None:
    assert guard.reader() is guard.reader()


# -- policy ----------------------------------------------------------------------------------------


def readings(
    available_pct: float = 50.0, available_mb: float = 8000.0, threads: int = 20, room: int = 30000
) -> Readings:
    return Readings(
        monotonic=0.0,
        wall=0.0,
        available_mb=available_mb,
        available_pct=available_pct,
        memory_source="host",
        host_available_mb=available_mb,
        host_total_mb=16000.0,
        cgroup_version=None,
        cgroup_limit_mb=None,
        cgroup_available_mb=None,
        worker_threads=threads,
        worker_processes=3,
        host_threads=500,
        threads_max=100000,
        pid_max=32768,
        cgroup_pids_current=None,
        cgroup_pids_max=None,
        thread_headroom=room,
        thread_headroom_limit="pid_max",
        read_ms=0.1,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


TH = Thresholds(
    min_available_mb=256,
    min_available_pct=10.0,
    max_threads=1000,
    min_thread_headroom=512,
    critical_available_mb=128,
    critical_available_pct=5.0,
    critical_thread_headroom=128,
    recover_factor=1.5,
    recover_seconds=60.0,
)


def test_policy_steps_down_one_per_check_to_the_floor() -> None:
    clock = FakeClock()
    p = Policy(TH, ceiling=4, floor=1, clock=clock)
    assert p.cap == 4
    t = p.observe(readings(available_pct=7.0))
    assert t is not None and (t.old, t.new) == (4, 3)
    assert t.message().startswith("guard: memory 7.0% available < 10% (host) → concurrency 4→3 (")
    assert "memory 8000 MB / 7.0% available" in t.message()
    for expected in (2, 1, 1, 1):
        clock.advance(2)
        p.observe(readings(available_pct=7.0))
        assert p.cap == expected
    assert p.downgrades == 3
    assert p.last_transition is not None and p.last_transition.new == 1
    state = p.state()
    assert state["reduced"] is True and state["cap"] == 1 and state["downgrades"] == 3
    assert state["last_transition"]["message"].startswith("guard: memory 7.0% available < 10%")


def test_policy_hysteresis_recovery_must_hold() -> None:
    clock = FakeClock()
    p = Policy(TH, ceiling=3, floor=1, clock=clock)
    p.observe(readings(available_pct=5.5))
    p.observe(readings(available_pct=5.5))
    assert p.cap == 1

    # between the marks (10% ≤ available < 15%): the cap holds, no matter how long
    for _ in range(10):
        clock.advance(30)
        assert p.observe(readings(available_pct=12.0)) is None
    assert p.cap == 1

    # calm, but not for long enough
    assert p.observe(readings(available_pct=40.0)) is None
    clock.advance(59)
    assert p.observe(readings(available_pct=40.0)) is None
    # a relapse into the in-between band resets the timer
    clock.advance(0.5)
    assert p.observe(readings(available_pct=12.0)) is None
    clock.advance(1)
    assert p.observe(readings(available_pct=40.0)) is None
    clock.advance(59.9)
    assert p.observe(readings(available_pct=40.0)) is None
    clock.advance(0.2)
    t = p.observe(readings(available_pct=40.0))
    assert t is not None and (t.old, t.new, t.direction) == (1, 2, "up")
    assert "pressure gone for 60 s" in t.message()

    # the next step needs another full period
    clock.advance(30)
    assert p.observe(readings(available_pct=40.0)) is None
    clock.advance(30)
    t = p.observe(readings(available_pct=40.0))
    assert t is not None and (t.old, t.new) == (2, 3)
    clock.advance(600)
    assert p.observe(readings(available_pct=40.0)) is None  # at the ceiling
    assert (p.cap, p.downgrades, p.upgrades) == (3, 2, 2)


def test_policy_pressure_during_recovery_steps_down_again() -> None:
    clock = FakeClock()
    p = Policy(TH, ceiling=3, floor=1, clock=clock)
    p.observe(readings(available_mb=100.0))
    assert p.cap == 2
    clock.advance(50)
    p.observe(readings())
    clock.advance(50)
    assert p.observe(readings(threads=1001)) is not None  # the worker's own threads
    assert p.cap == 1
    assert p.pressure == ["threads 1001 in worker > 1000"]
    clock.advance(61)
    assert p.observe(readings(threads=700)) is None  # 700 > 1000 / 1.5: not calm yet
    assert p.calm_since is None


def test_policy_floor_is_never_zero_and_bounds() -> None:
    p = Policy(TH, ceiling=3, floor=0)
    assert p.floor == 1
    for _ in range(5):
        p.observe(readings(room=100))
    assert p.cap == 1
    assert "thread headroom 100 < 512 (pid_max)" in p.pressure[0]

    p = Policy(TH, ceiling=4, floor=2)
    p.set_bounds(ceiling=6)
    assert p.cap == 6  # an un-reduced cap follows the ceiling
    p.observe(readings(available_pct=1.0))
    assert p.cap == 5
    p.set_bounds(ceiling=8)
    assert p.cap == 5  # a reduced one does not
    p.set_bounds(ceiling=3, floor=3)
    assert (p.cap, p.floor) == (3, 3)


def test_zero_thresholds_are_off() -> None:
    off = Thresholds(0, 0, 0, 0, 0, 0, 0, 1.5, 60)
    r = readings(available_pct=0.1, available_mb=1, threads=10**6, room=0)
    assert guard.pressure_reasons(r, off) == []
    assert guard.critical_pressure(r, off) is None
    assert guard.is_calm(r, off)


def test_critical_pressure() -> None:
    assert guard.critical_pressure(readings(available_pct=6.0), TH) is None  # pressure, not critical
    assert guard.critical_pressure(readings(available_pct=4.0), TH) == "memory 4.0% available < 5% (host)"
    reason = guard.critical_pressure(readings(available_mb=100.0, room=50), TH)
    assert reason == "memory 100 MB available < 128 MB (host); thread headroom 50 < 128 (pid_max)"
    off = replace(settings(), guard_enabled=False)
    assert guard.critical_pressure(readings(available_pct=0.5), off) is None


def test_check_critical_reads_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATT_GUARD_CRITICAL_AVAILABLE_PCT", "100")  # always critical: < 100% available
    reason, r = guard.check_critical()
    assert r is not None and reason is not None and "available < 100%" in reason
    monkeypatch.setenv("BATT_GUARD_CRITICAL_AVAILABLE_PCT", "0")
    monkeypatch.setenv("BATT_GUARD_CRITICAL_AVAILABLE_MB", "0")
    monkeypatch.setenv("BATT_GUARD_CRITICAL_THREAD_HEADROOM", "0")
    assert guard.check_critical()[0] is None
    monkeypatch.setenv("BATT_GUARD_ENABLED", "0")
    assert guard.check_critical() == (None, None)


def test_guard_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATT_GUARD_MIN_AVAILABLE_MB", "900")
    monkeypatch.setenv("BATT_GUARD_MIN_AVAILABLE_PCT", "12.5")
    monkeypatch.setenv("BATT_GUARD_MAX_THREADS", "77")
    monkeypatch.setenv("BATT_GUARD_RECOVER_SECONDS", "3")
    monkeypatch.setenv("BATT_GUARD_RECOVER_FACTOR", "2")
    t = Thresholds.from_settings()
    assert (t.min_available_mb, t.min_available_pct, t.max_threads, t.recover_seconds, t.recover_factor) == (
        900,
        12.5,
        77,
        3.0,
        2.0,
    )
    monkeypatch.setenv("BATT_GUARD_RECOVER_FACTOR", "0.5")
    with pytest.raises(ConfigError, match="BATT_GUARD_RECOVER_FACTOR"):
        settings()
    monkeypatch.setenv("BATT_GUARD_RECOVER_FACTOR", "1.5")
    monkeypatch.setenv("BATT_GUARD_MAX_THREADS", "lots")
    with pytest.raises(ConfigError, match="BATT_GUARD_MAX_THREADS"):
        settings()


# -- thread exhaustion -----------------------------------------------------------------------------


def test_thread_start_error_mapping() -> None:
    exhausted = RuntimeError("can't start new thread")
    mapped = guard.map_thread_error(exhausted)
    assert isinstance(mapped, guard.ThreadStartError) and mapped.__cause__ is exhausted
    for other in (
        RuntimeError("dictionary changed size during iteration"),
        RecursionError("can't start new thread"),
        MemoryError(),
        ValueError("can't start new thread"),
    ):
        assert guard.map_thread_error(other) is other
    ok: dict[str, Any] = {"status": "error", "error": one_line(exhausted)}
    assert guard.thread_error_in_result(ok)
    assert not guard.thread_error_in_result({"status": "error", "error": one_line(RuntimeError("boom"))})
    assert not guard.thread_error_in_result({"status": "ok", "error": None})
    assert guard.thread_exhaustion_message(5) == "thread exhaustion after 5 retries"


def test_real_thread_exhaustion_is_recognised() -> None:
    """A process whose address space cannot fit another thread stack raises exactly the mapped error."""
    code = (
        "import resource, threading, psutil\n"
        "vms = psutil.Process().memory_info().vms\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vms + 4 * 1024 * 1024, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    threading.Thread(target=lambda: None).start()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__ + ':' + str(exc))\n"
        "else:\n"
        "    print('started')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    kind, _, message = out.stdout.strip().partition(":")
    assert kind == "RuntimeError", out.stdout + out.stderr
    assert guard.is_thread_start_error(RuntimeError(message))
