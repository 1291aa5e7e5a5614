"""batt-queue's Celery app with the overrides of ``BENCH_CELERY_CONF``, for :mod:`bench.costs` only.

``celery -A bench.costs_app worker`` runs the real app (:mod:`batt_tasks.celery`, with its sample task)
after ``app.conf.update(json.loads(BENCH_CELERY_CONF))`` (dict settings merged), and adds ``bench.noop``:
a Celery task that does nothing, to measure what Celery itself costs per task. Deployments never use
this module.
"""

from __future__ import annotations

import json
import os
from typing import Any

import batt_tasks.tasks  # noqa: F401 - registers batt.score_sample on the app
from batt_tasks.celery import app

OVERRIDES: dict[str, Any] = json.loads(os.environ.get("BENCH_CELERY_CONF", "") or "{}")
# a dict-valued setting (broker_transport_options) is merged into the app's, not replaced
app.conf.update(
    {
        k: {**app.conf[k], **v} if isinstance(v, dict) and isinstance(app.conf[k], dict) else v
        for k, v in OVERRIDES.items()
    }
)

NOOP_NAME = "bench.noop"


@app.task(name=NOOP_NAME)
def noop(payload: Any) -> Any:
    """Return the payload: one Celery task with no work at all."""
    return payload


__all__ = ["NOOP_NAME", "OVERRIDES", "app", "noop"]
