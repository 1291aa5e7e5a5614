"""The guarded autoscaler: Celery's ``Autoscaler`` that also lowers the pool's cap under pressure.

Installed with the app setting ``worker_autoscaler = "batt_tasks.autoscaler:GuardedAutoscaler"``; active
when the worker runs with ``--autoscale=MAX,MIN``. On every check (``BATT_GUARD_CHECK_SECONDS``, and at
most that often however many task messages arrive) it takes :class:`batt_tasks.guard.Readings` of the
worker's process tree and feeds them to a :class:`batt_tasks.guard.Policy`:

- under pressure the cap falls one step per check, down to ``max(MIN, 1)``; pool processes above the
  cap are shrunk at once, but only idle ones (busy ones go when their sample ends, on a later check),
  and the consumer's prefetch count follows the cap;
- after the recovery condition has held for ``BATT_GUARD_RECOVER_SECONDS`` the cap rises one step at a
  time, and Celery's ordinary autoscaling grows the pool back as samples arrive.

Billiard's ``Pool.shrink`` picks "inactive" children from ``Pool._pool``, which still lists a child
that was sent SIGTERM but not reaped yet; two shrinks before the reaper runs would pick that child
twice, lowering the process target twice for one exit. :meth:`GuardedAutoscaler.idle_processes`
skips children already terminating or exited, and children with a job written, being written,
scheduled or running, so every shrink removes a distinct idle child.

The guard's state (readings, cap, downgrades, last transition) is in :meth:`GuardedAutoscaler.info`,
which Celery puts under ``autoscaler`` in ``inspect stats``; ``inspect guard`` (:mod:`batt_tasks.control`)
shows it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from celery.worker.autoscale import AUTOSCALE_KEEPALIVE, Autoscaler

from batt_tasks.config import Settings, settings
from batt_tasks.guard import Policy, Reader, Readings, Thresholds, Transition, critical_pressure, log_transition

logger = logging.getLogger("batt_tasks.autoscaler")


class GuardedAutoscaler(Autoscaler):
    """Celery's autoscaler with the worker guard's cap on top (see the module docstring)."""

    def __init__(
        self,
        pool: Any,
        max_concurrency: int,
        min_concurrency: int = 0,
        worker: Any = None,
        keepalive: float = AUTOSCALE_KEEPALIVE,
        mutex: Any = None,
        *,
        config: Settings | None = None,
        reader: Reader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = config or settings()
        super().__init__(pool, max_concurrency, min_concurrency, worker=worker, keepalive=keepalive, mutex=mutex)
        self.enabled = s.guard_enabled
        self.check_seconds = s.guard_check_seconds
        #: How long a pool process must have been idle before ordinary autoscaling removes it.
        self.idle_keepalive = keepalive
        #: Celery schedules ``maybe_scale`` every ``keepalive`` seconds: that is the guard's check tick.
        self.keepalive = min(keepalive, self.check_seconds) if self.enabled else keepalive
        self.clock = clock
        self.reader = reader or Reader()
        self.thresholds = Thresholds.from_settings(s)
        self.policy = Policy(self.thresholds, ceiling=max_concurrency, floor=max(1, min_concurrency), clock=clock)
        self.checks = 0
        self.read_errors = 0
        self.last_error: str | None = None
        self._last_check: float | None = None

    # -- the pool ---------------------------------------------------------------------------------

    @property
    def billiard_pool(self) -> Any:
        """The billiard pool under Celery's ``TaskPool`` (None for pools that are not prefork)."""
        inner = getattr(self.pool, "_pool", None)
        return inner if hasattr(inner, "_pool") and hasattr(inner, "_cache") else None

    def _busy(self) -> tuple[set[int], set[int]]:
        bp = self.billiard_pool
        pids: set[int] = set()
        for job in list(bp._cache.values()):
            with contextlib.suppress(Exception):  # a job type without worker_pids() blocks nothing
                pids.update(pid for pid in job.worker_pids() if pid)
            for proc in (getattr(job, "_write_to", None), getattr(job, "_scheduled_for", None)):
                if proc is not None and getattr(proc, "pid", None):
                    pids.add(proc.pid)
        fds = set(getattr(bp, "_busy_workers", ())) | set(getattr(bp, "_active_writes", ()))
        return pids, fds

    def idle_processes(self) -> list[Any]:
        """Pool children that may be stopped now: alive, not already terminating, no job of theirs pending."""
        bp = self.billiard_pool
        if bp is None:
            return []
        busy_pids, busy_fds = self._busy()
        idle = []
        for proc in list(bp._pool):
            if getattr(proc, "_controlled_termination", False) or proc.exitcode is not None:
                continue
            if proc.pid in busy_pids or getattr(proc, "inqW_fd", None) in busy_fds:
                continue
            idle.append(proc)
        return idle

    def terminating_processes(self) -> list[Any]:
        """Children sent SIGTERM by a shrink that the pool has not reaped yet."""
        bp = self.billiard_pool
        if bp is None:
            return []
        return [p for p in list(bp._pool) if getattr(p, "_controlled_termination", False)]

    def tree_pids(self) -> list[int]:
        """The worker's process tree: this process and every live pool child."""
        pids = [os.getpid()]
        bp = self.billiard_pool
        if bp is not None:
            pids.extend(p.pid for p in list(bp._pool) if p.pid)
        return pids

    def _shrink(self, n: int) -> int:  # type: ignore[override]
        """Stop up to ``n`` idle children (each one once); return how many were stopped."""
        bp = self.billiard_pool
        if bp is None:
            super()._shrink(n)
            return 0
        chosen = self.idle_processes()[: max(0, n)]
        if not chosen:
            logger.debug("autoscaler: won't scale down: all processes busy")
            return 0
        logger.info("Scaling down %s processes.", len(chosen))
        for proc in chosen:
            # billiard's Pool.shrink, one distinct idle child at a time
            bp._processes -= 1
            if bp._putlock:
                bp._putlock.shrink()
            proc.terminate_controlled()
            bp.on_shrink(1)
        return len(chosen)

    # -- scaling ----------------------------------------------------------------------------------

    @property
    def cap(self) -> int:
        """The most pool processes allowed now: the guard's cap, never above ``--autoscale`` MAX."""
        return max(1, min(self.policy.cap, self.max_concurrency)) if self.enabled else self.max_concurrency

    def _maybe_scale(self, req: Any = None) -> bool:
        self.guard_check()
        cap = self.cap
        procs = self.processes
        want = min(self.qty, cap)
        if want > procs:
            self.scale_up(want - procs)
            return True
        if procs > cap:
            return self._shrink(procs - cap) > 0
        want = max(self.qty, self.min_concurrency)
        if want < procs:
            self.scale_down(procs - want)
            return True
        return False

    def scale_down(self, n: int) -> Any:
        """Celery's idle scale-down, timed by the original keepalive rather than the guard's tick."""
        last_active = self._last_scale_up
        last_received = self._last_task_received
        if last_received is not None and (last_active is None or last_received > last_active):
            last_active = last_received
        if last_active is not None and time.monotonic() - last_active > self.idle_keepalive:
            return self._shrink(n)
        return None

    def update(self, max: int | None = None, min: int | None = None) -> tuple[int, int]:  # noqa: A002 - Celery's names
        """The ``autoscale`` remote control: new bounds; the guard's cap is kept within them."""
        with self.mutex:
            old_cap = self.cap
            if max is not None:
                self.max_concurrency = max
            if min is not None:
                self.min_concurrency = min
            self.policy.set_bounds(self.max_concurrency, self.min_concurrency)
            cap = self.cap
            if self.processes > cap:
                self._shrink(self.processes - cap)
            if self.min_concurrency > self.processes:
                self._grow(self.min_concurrency - self.processes)
            self.adjust_prefetch(old_cap, cap)
            return self.max_concurrency, self.min_concurrency

    def adjust_prefetch(self, old_cap: int, new_cap: int) -> None:
        """Move the consumer's prefetch count by the cap's change (times the prefetch multiplier)."""
        consumer = getattr(self.worker, "consumer", None)
        qos = getattr(consumer, "qos", None)
        diff = new_cap - old_cap
        if not diff or consumer is None or qos is None:
            return
        multiplier = getattr(consumer, "prefetch_multiplier", 1) or 1
        if getattr(consumer, "initial_prefetch_count", 0):
            consumer.initial_prefetch_count = new_cap * multiplier
        if diff < 0:
            qos.decrement_eventually(-diff * multiplier)
        else:
            qos.increment_eventually(diff * multiplier)

    # -- the guard --------------------------------------------------------------------------------

    def read(self) -> Readings:
        """Readings of the worker's process tree now."""
        return self.reader.read(self.tree_pids())

    def guard_check(self, force: bool = False) -> Transition | None:
        """One guard check (at most one per ``BATT_GUARD_CHECK_SECONDS`` unless ``force``)."""
        if not self.enabled:
            return None
        now = self.clock()
        if not force and self._last_check is not None and now - self._last_check < self.check_seconds * 0.9:
            return None
        self._last_check = now
        try:
            readings = self.read()
        except Exception as exc:  # noqa: BLE001 - a failed reading must never stop the worker
            self.read_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.read_errors == 1:
                logger.exception("guard: reading pressure failed; keeping the cap at %s", self.cap)
            return None
        self.checks += 1
        old_cap = self.cap
        transition = self.policy.observe(readings)
        if transition is not None:
            log_transition(transition, logger)
            self.adjust_prefetch(old_cap, self.cap)
        return transition

    def guard_info(self, fresh: bool = False) -> dict[str, Any]:
        """The guard's state; with ``fresh`` also readings taken now (the policy is not advanced)."""
        out: dict[str, Any] = {"enabled": self.enabled, "autoscale": True}
        out.update(self.policy.state())
        out.update(
            cap=self.cap,
            max=self.max_concurrency,
            min=self.min_concurrency,
            processes=self.processes,
            live_processes=len(self.tree_pids()) - 1,
            terminating=len(self.terminating_processes()),
            checks=self.checks,
            check_seconds=self.check_seconds,
            idle_keepalive=self.idle_keepalive,
            read_errors=self.read_errors,
            last_error=self.last_error,
        )
        if fresh:
            try:
                now = self.read()
            except Exception as exc:  # noqa: BLE001 - the report must not fail because a reading did
                out["readings_now"] = None
                out["critical_now"] = None
                out["last_error"] = f"{type(exc).__name__}: {exc}"
            else:
                out["readings_now"] = now.as_dict()
                out["critical_now"] = critical_pressure(now, self.thresholds)
        return out

    def info(self) -> dict[str, Any]:
        """Celery's autoscaler info (``inspect stats`` → ``autoscaler``) plus the cap and the guard's state."""
        out = super().info()
        out["cap"] = self.cap
        out["guard"] = self.guard_info()
        return out
