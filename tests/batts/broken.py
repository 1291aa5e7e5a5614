"""A batt broken everywhere: every call raises ``ZeroDivisionError`` two frames down (for error reporting tests)."""

from __future__ import annotations

from typing import Any


def _ratio(grid: Any) -> float:
    return len(grid) / 0


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Always raise, from a helper (so the traceback has a frame the message does not name)."""
    _ratio(I)
    return [], []
