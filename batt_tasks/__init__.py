"""batt-queue's worker side: the Celery app, the pure scoring core, the batt loader and the built-in battery.

``celery -A batt_tasks worker`` finds the app in :mod:`batt_tasks.celery`. The package itself stays
light: importing the scoring core does not import Celery.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from batt_tasks.celery import app

        return app
    raise AttributeError(name)
