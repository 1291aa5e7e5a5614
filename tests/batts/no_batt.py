"""A module with a solver function that is not called ``batt``."""

from __future__ import annotations

from typing import Any


def solve(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """The wrong name: batt-submit must refuse this module."""
    return [(1, False, "identity", I)], []
