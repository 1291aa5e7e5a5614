"""A batt module that imports a dependency which is not installed."""

from __future__ import annotations

from typing import Any

import batt_queue_dependency_that_is_not_installed  # noqa: F401


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Never callable: the module fails to import."""
    return [], []
