"""A batt that breaks the protocol: it returns ``None`` instead of ``(o, s)`` on ``bad*`` tasks."""

from __future__ import annotations

from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> Any:  # noqa: E741
    """``None`` for ``bad*`` tasks, a proper identity answer elsewhere."""
    if task_id.startswith("bad"):
        return None
    return [(1, False, "identity", I)], []
