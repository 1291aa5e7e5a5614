"""The guarded autoscaler against a real billiard pool (Celery's prefork ``TaskPool``), without a broker.

Pressure readings and the clock are scripted; the pool, its processes, its shrink/grow and the
consumer's QoS object are real. The worker object around them is the only stand-in: it carries the
consumer whose prefetch count the autoscaler adjusts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.concurrency.prefork import TaskPool
from celery.worker import state as worker_state
from celery.worker.control import Panel
from kombu.common import QoS

from batt_tasks import control
from batt_tasks.autoscaler import GuardedAutoscaler
from batt_tasks.config import settings
from batt_tasks.guard import Readings

CHECK = 2.0
RECOVER = 60.0


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def hold_until(path: str, timeout: float = 60.0) -> int:
    """Pool job: stay busy until ``path`` exists; return this pool process's pid."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def reading(available_pct: float) -> Readings:
    return Readings(
        monotonic=0.0,
        wall=time.time(),
        available_mb=4000.0,
        available_pct=available_pct,
        memory_source="host",
        host_available_mb=4000.0,
        host_total_mb=16000.0,
        cgroup_version=None,
        cgroup_limit_mb=None,
        cgroup_available_mb=None,
        worker_threads=10,
        worker_processes=4,
        host_threads=300,
        threads_max=100000,
        pid_max=32768,
        cgroup_pids_current=None,
        cgroup_pids_max=None,
        thread_headroom=32000,
        thread_headroom_limit="pid_max",
        read_ms=0.1,
    )


class ScriptedReader:
    """Returns the current scripted reading; records the pids it was asked about."""

    def __init__(self) -> None:
        self.available_pct = 50.0
        self.calls: list[list[int]] = []
        self.fail = False

    def read(self, pids: Any = ()) -> Readings:
        if self.fail:
            raise OSError("proc is gone")
        self.calls.append(list(pids))
        return reading(self.available_pct)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A real 3-process pool under a GuardedAutoscaler(3, 1) with scripted pressure and clock."""

    def __init__(self, tmp: Path, processes: int = 3, max_c: int = 3, min_c: int = 1, **config: Any) -> None:
        self.tmp = tmp
        self.app = Celery("guard-test", set_as_current=False)
        self.pool = TaskPool(processes, app=self.app, initargs=(self.app, "guard-test@localhost"))
        self.pool.start()
        self.qos = QoS(lambda **kw: None, max_c)
        self.consumer = SimpleNamespace(qos=self.qos, prefetch_multiplier=1, initial_prefetch_count=max_c)
        self.worker = SimpleNamespace(consumer=self.consumer, autoscaler=None)
        self.reader = ScriptedReader()
        self.clock = FakeClock()
        fields: dict[str, Any] = {
            "guard_enabled": True,
            "guard_check_seconds": CHECK,
            "guard_recover_seconds": RECOVER,
            "guard_min_available_pct": 10.0,
            "guard_min_available_mb": 0,
            "guard_max_threads": 0,
            "guard_min_thread_headroom": 0,
            "guard_recover_factor": 1.5,
        }
        conf = replace(settings(), **{**fields, **config})
        self.scaler = GuardedAutoscaler(
            self.pool,
            max_c,
            min_c,
            worker=self.worker,
            keepalive=30,
            config=conf,
            reader=self.reader,  # type: ignore[arg-type]
            clock=self.clock,
        )
        self.worker.autoscaler = self.scaler
        self.jobs = 0

    @property
    def bp(self) -> Any:
        return self.pool._pool

    def live(self) -> list[int]:
        return [p.pid for p in self.bp._pool if not p._controlled_termination and p.exitcode is None]

    def settled(self) -> bool:
        """The pool reaped every terminated child and runs exactly its target number of processes."""
        self.pool.maintain_pool()
        return len(self.bp._pool) == self.bp._processes and not self.scaler.terminating_processes()

    def tick(self, advance: float = CHECK) -> bool:
        self.clock.now += advance
        return bool(self.scaler._maybe_scale()) and (self.pool.maintain_pool() or True)

    def busy_job(self) -> tuple[Any, Path]:
        self.jobs += 1
        release = self.tmp / f"release-{self.jobs}"
        job = self.pool.apply_async(hold_until, (str(release),))
        wait_for(lambda: job.worker_pids(), what="a pool process to accept the job")
        return job, release

    def close(self) -> None:
        self.pool.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    wait_for(lambda: len(r.live()) == 3, what="3 pool processes")
    try:
        yield r
    finally:
        r.close()


def test_billiard_shrink_counts_a_terminating_child_twice(rig: Rig) -> None:
    """Why the autoscaler picks children itself: billiard's own shrink picks an unreaped child again."""
    children = list(rig.bp._pool)
    rig.bp.shrink(1)
    rig.bp.shrink(1)  # before the supervisor reaped the first one
    assert rig.bp._processes == 1
    terminated = [c for c in children if c._controlled_termination]
    if len(terminated) != 1:
        pytest.skip("the supervisor reaped the first child between the two shrinks")
    # one child got SIGTERM twice: the target fell by 2 for a single exit, one process too many runs
    wait_for(lambda: terminated[0] not in rig.bp._pool, what="billiard to reap")
    assert len(rig.live()) == 2 and rig.bp._processes == 1


def test_shrink_stops_distinct_idle_children(rig: Rig) -> None:
    before = set(rig.live())
    assert rig.scaler._shrink(1) == 1
    assert rig.scaler._shrink(1) == 1  # at once, before the first is reaped
    assert rig.bp._processes == 1
    stopped = {p.pid for p in rig.bp._pool if p._controlled_termination} | (before - {p.pid for p in rig.bp._pool})
    assert len(stopped) == 2
    wait_for(rig.settled, what="the pool to reap both")
    assert len(rig.live()) == 1 and set(rig.live()) == before - stopped


def test_busy_children_are_never_shrunk(rig: Rig) -> None:
    job_a, release_a = rig.busy_job()
    job_b, release_b = rig.busy_job()
    busy = set(job_a.worker_pids()) | set(job_b.worker_pids())
    assert len(busy) == 2
    assert rig.scaler._shrink(3) == 1  # only the idle one
    wait_for(rig.settled, what="the idle child to go")
    assert set(rig.live()) == busy
    assert rig.scaler._shrink(1) == 0  # everything busy: nothing stopped, nothing miscounted
    assert rig.bp._processes == 2
    release_a.touch()
    release_b.touch()
    assert job_a.get(timeout=30) in busy and job_b.get(timeout=30) in busy


def test_pressure_lowers_cap_step_by_step_and_busy_children_finish(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    job_a, release_a = rig.busy_job()
    job_b, release_b = rig.busy_job()
    rig.reader.available_pct = 7.0
    caplog.set_level("INFO", logger="batt_tasks.autoscaler")

    rig.tick()  # cap 3 → 2; the idle child goes
    assert rig.scaler.cap == 2
    assert rig.qos.value == 2 and rig.consumer.initial_prefetch_count == 2
    wait_for(rig.settled, what="shrink to 2")
    assert len(rig.live()) == 2

    rig.tick()  # cap 2 → 1; both remaining children are busy: none is stopped
    assert rig.scaler.cap == 1 and rig.qos.value == 1
    assert rig.bp._processes == 2

    release_a.touch()
    pid_a = job_a.get(timeout=30)
    wait_for(lambda: not rig.scaler._busy()[0] & {pid_a}, what="job A to leave the cache")
    rig.tick()  # still under pressure: cap stays at the floor, the now idle child goes
    assert rig.scaler.cap == 1
    wait_for(rig.settled, what="shrink to 1")
    assert rig.live() == list(job_b.worker_pids())
    release_b.touch()
    assert job_b.get(timeout=30) in job_b.worker_pids()

    info = rig.scaler.info()
    assert info["guard"]["downgrades"] == 2
    assert (info["max"], info["min"], info["cap"], info["current"]) == (3, 1, 1, 1)
    transitions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("guard: ")]
    assert len(transitions) == 2
    assert all("memory 7.0% available < 10% (host) → concurrency" in m for m in transitions)
    assert "concurrency 3→2" in transitions[0] and "concurrency 2→1" in transitions[1]


def test_recovery_regrows_one_step_per_period(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.reader.available_pct = 5.0
    rig.tick()
    rig.tick()
    wait_for(rig.settled, what="shrink to 1")
    assert rig.scaler.cap == 1 and len(rig.live()) == 1

    # three samples waiting: Celery's autoscaling would grow to 3, the cap allows 1
    monkeypatch.setattr(worker_state, "reserved_requests", {object(), object(), object()})
    rig.reader.available_pct = 12.0  # between the marks: no recovery
    for _ in range(40):
        rig.tick()
    assert rig.scaler.cap == 1 and rig.bp._processes == 1

    rig.reader.available_pct = 40.0
    rig.tick()  # calm starts
    rig.tick(RECOVER - CHECK)
    assert rig.scaler.cap == 1
    rig.tick(1)  # within one check period of the last: not even read
    assert rig.scaler.cap == 1
    rig.tick(CHECK - 1)
    assert rig.scaler.cap == 2 and rig.qos.value == 2
    wait_for(lambda: rig.settled() and len(rig.live()) == 2, what="growth to 2")
    rig.tick(RECOVER)
    assert rig.scaler.cap == 3 and rig.qos.value == 3
    wait_for(lambda: rig.settled() and len(rig.live()) == 3, what="growth to 3")
    guard_state = rig.scaler.guard_info()
    assert (guard_state["downgrades"], guard_state["upgrades"], guard_state["reduced"]) == (2, 2, False)
    assert guard_state["last_transition"]["message"].startswith("guard: pressure gone for 60 s → concurrency 2→3")


def test_checks_are_rate_limited_and_tick_with_the_event_loop(rig: Rig) -> None:
    assert rig.scaler.keepalive == CHECK  # Celery calls maybe_scale every keepalive seconds
    assert rig.scaler.idle_keepalive == 30
    rig.scaler.guard_check()
    for _ in range(5):  # a burst of task messages within one check period
        rig.scaler._maybe_scale()
    assert len(rig.reader.calls) == 1
    pids = rig.reader.calls[0]
    assert pids[0] == os.getpid() and set(pids[1:]) == set(rig.live())
    rig.clock.now += CHECK
    rig.scaler._maybe_scale()
    assert len(rig.reader.calls) == 2


def test_failed_reading_keeps_the_cap(rig: Rig) -> None:
    rig.reader.fail = True
    assert rig.scaler.guard_check(force=True) is None
    assert rig.scaler.read_errors == 1 and rig.scaler.cap == 3
    assert rig.scaler.guard_info()["last_error"] == "OSError: proc is gone"
    report = rig.scaler.guard_info(fresh=True)  # inspect guard still answers
    assert report["readings_now"] is None and report["cap"] == 3


def test_update_keeps_cap_within_new_bounds(rig: Rig) -> None:
    assert rig.scaler.update(max=2) == (2, 1)
    assert rig.scaler.cap == 2 and rig.qos.value == 2
    wait_for(lambda: rig.settled() and len(rig.live()) == 2, what="shrink to the new max")
    rig.scaler.update(max=3, min=2)
    assert rig.scaler.cap == 3 and rig.qos.value == 3 and rig.scaler.policy.floor == 2


def test_guard_disabled_is_plain_autoscaling(tmp_path: Path) -> None:
    r = Rig(tmp_path, guard_enabled=False)
    try:
        r.reader.available_pct = 1.0
        r.tick()
        r.tick()
        assert r.scaler.cap == 3 and r.reader.calls == [] and r.scaler.keepalive == 30
    finally:
        r.close()


def test_stats_and_inspect_guard(rig: Rig) -> None:
    assert "guard" in Panel.data and Panel.meta["guard"].type == "inspect"
    rig.reader.available_pct = 8.0
    rig.tick()
    report = Panel.data["guard"](SimpleNamespace(consumer=SimpleNamespace(controller=rig.worker)))
    assert report["cap"] == 2 and report["downgrades"] == 1 and report["autoscale"] is True
    assert report["last_transition"]["reason"] == "memory 8.0% available < 10% (host)"
    assert report["readings_now"]["available_pct"] == 8.0
    assert report["readings"]["available_pct"] == 8.0
    step_info = control.GuardStep(rig.worker).info(rig.worker)
    assert step_info["guard"]["cap"] == 2

    # a worker without the guarded autoscaler: readings of the whole process tree, no cap
    wait_for(rig.settled, what="the shrunk child to be reaped")
    plain = control.guard_report(SimpleNamespace(autoscaler=None, pool=rig.pool))
    assert plain["autoscale"] is False and plain["cap"] is None
    assert plain["readings"]["worker_processes"] == 1 + len(rig.live())
