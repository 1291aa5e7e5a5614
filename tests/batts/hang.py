"""A batt stuck in ``while True`` on tasks whose id starts with ``hang``; identity elsewhere."""

from __future__ import annotations

from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Loop forever in pure Python (no I/O, no sleep) for ``hang*`` tasks."""
    if task_id.startswith("hang"):
        n = 0
        while True:
            n += 1
    return [(1, False, "identity", I)], []
