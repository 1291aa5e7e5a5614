"""A batt that sleeps 0.2 s on every call, then answers with the identity (for interrupt tests)."""

from __future__ import annotations

import time
from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Sleep, then return the input as the only candidate's output."""
    time.sleep(0.2)
    return [(1, False, "identity", I)], []
