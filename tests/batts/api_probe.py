"""Test batt for the API tests: two candidates with their ``t_n``/``evo``, differ rows that differ between
the solve call and the diff call, and optional sleeps.

Settings come from ``BATT_API_PROBE`` (JSON, read at each call so a worker and the local child agree):
``{"slow_tasks": [ids], "slow_seconds": s, "diff_sleep": s}`` — every call on a slow task sleeps
``slow_seconds``; the diff call of each task's ``train[0]`` sleeps ``diff_sleep`` (past ``-t``: a diff timeout).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Identity (t_n 11) and blank (t_n 12, evo) candidates; size/solve_only rows, then size/diff_only rows."""
    conf = json.loads(os.environ.get("BATT_API_PROBE", "{}"))
    if task_id in conf.get("slow_tasks", ()):
        time.sleep(float(conf.get("slow_seconds", 1.0)))
    if C is not None and S[0][0] == I:
        time.sleep(float(conf.get("diff_sleep", 0.0)))
    o = [(11, False, "identity", I), (12, True, "blank", tuple(tuple(0 for _ in row) for row in I))]
    if C is None:
        return o, [(13, "identity", "size", (len(I),)), (14, "blank", "solve_only", (3,))]
    return o, [(13, "identity", "size", (len(C),)), (15, "identity", "diff_only", (5,))]
