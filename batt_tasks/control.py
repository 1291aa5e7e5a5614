"""The guard seen from outside: ``celery -A batt_tasks inspect guard`` and a ``guard`` entry in ``inspect stats``.

Importing this module registers the ``guard`` inspect command (in the worker, and in the ``celery``
CLI, which refuses commands it does not know), so :mod:`batt_tasks.celery` imports it. :func:`install`
adds :class:`GuardStep`, a worker bootstep whose only job is to put the guard's report under ``guard``
in ``inspect stats`` — also for a worker without ``--autoscale``, which then shows readings without a cap.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps
from celery.worker.control import inspect_command

from batt_tasks.autoscaler import GuardedAutoscaler
from batt_tasks.config import settings
from batt_tasks.guard import Thresholds, critical_pressure, pressure_reasons, reader

logger = logging.getLogger("batt_tasks.guard")

NO_AUTOSCALE_NOTICE = (
    "guard: this worker runs without --autoscale, so the guard cannot lower its concurrency under memory or "
    "thread pressure (a sample still defers itself under critical pressure); start it with --autoscale=MAX,MIN "
    "to let the guard manage the pool"
)


def guard_report(worker: Any, fresh: bool = True) -> dict[str, Any]:
    """The guard's state in ``worker``: readings, cap, downgrades, last transition, thresholds.

    With the guarded autoscaler this is its :meth:`~GuardedAutoscaler.guard_info`; otherwise (no
    ``--autoscale``, or another autoscaler) the readings of the worker's process tree taken now.
    """
    scaler = getattr(worker, "autoscaler", None)
    if isinstance(scaler, GuardedAutoscaler):
        return scaler.guard_info(fresh=fresh)
    s = settings()
    thresholds = Thresholds.from_settings(s)
    pool = getattr(getattr(worker, "pool", None), "_pool", None)
    pids = [os.getpid()] + [p.pid for p in list(getattr(pool, "_pool", ())) if getattr(p, "pid", None)]
    readings = reader().read(pids)
    return {
        "enabled": s.guard_enabled,
        "autoscale": False,
        "note": "worker runs without --autoscale (or without the guarded autoscaler): the cap is not managed",
        "cap": None,
        "downgrades": 0,
        "last_transition": None,
        "pressure": pressure_reasons(readings, thresholds),
        "critical_now": critical_pressure(readings, thresholds),
        "readings": readings.as_dict(),
        "thresholds": thresholds.as_dict(),
    }


@inspect_command()
def guard(state: Any, **kwargs: Any) -> dict[str, Any]:
    """Worker guard: pressure readings, concurrency cap, downgrade count and last transition."""
    return guard_report(state.consumer.controller, fresh=True)


class GuardStep(bootsteps.StartStopStep):
    """Worker bootstep that adds ``guard`` to ``inspect stats``, and warns at start when there is no ``--autoscale``."""

    label = "Guard"

    def start(self, w: Any) -> None:
        """Say once, at worker start, when the guard cannot manage the pool's size."""
        if settings().guard_enabled and not isinstance(getattr(w, "autoscaler", None), GuardedAutoscaler):
            logger.warning(NO_AUTOSCALE_NOTICE)

    def info(self, w: Any) -> dict[str, Any]:
        """``{"guard": report}`` for the worker's stats."""
        return {"guard": guard_report(w, fresh=False)}


def install(app: Any) -> None:
    """Add :class:`GuardStep` to ``app``'s worker blueprint (idempotent)."""
    app.steps["worker"].add(GuardStep)
