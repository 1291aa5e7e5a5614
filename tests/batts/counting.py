"""A batt that appends ``<task_id>`` to the file ``$BATT_TEST_CALLS`` on every call, sleeps 0.2 s, then answers
with the identity (for resume tests: which tasks ran again)."""

from __future__ import annotations

import os
import time
from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Record the call, sleep, then return the input as the only candidate's output."""
    with open(os.environ["BATT_TEST_CALLS"], "a", encoding="utf-8") as f:
        f.write(task_id + "\n")
    time.sleep(0.2)
    return [(1, False, "identity", I)], []
