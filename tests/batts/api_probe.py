"""Test batt for the API tests: two candidates with their ``t_n``/``evo``, differ rows that differ between
the solve call and the diff call, and sleeps chosen by the task id (a worker's environment is fixed).

- ``slow*`` tasks: every call sleeps 0.7 s (they complete after faster tasks submitted later);
- ``late*`` tasks: the diff call of ``train[0]`` sleeps 5 s (past ``-t 1``: a diff-call timeout).
"""

from __future__ import annotations

import time
from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Identity (t_n 11) and blank (t_n 12, evo) candidates; size/solve_only rows, then size/diff_only rows."""
    if task_id.startswith("slow"):
        time.sleep(0.7)
    if task_id.startswith("late") and C is not None and S[0][0] == I:
        time.sleep(5)
    o = [(11, False, "identity", I), (12, True, "blank", tuple(tuple(0 for _ in row) for row in I))]
    if C is None:
        return o, [(13, "identity", "size", (len(I),)), (14, "blank", "solve_only", (3,))]
    return o, [(13, "identity", "size", (len(C),)), (15, "identity", "diff_only", (5,))]
