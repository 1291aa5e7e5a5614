"""A batt that raises on tasks whose id starts with ``boom``; identity elsewhere."""

from __future__ import annotations

from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Raise ``ValueError`` for ``boom*`` tasks."""
    if task_id.startswith("boom"):
        raise ValueError(f"boom on purpose in {task_id}")
    return [(1, False, "identity", I)], []
