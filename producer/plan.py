"""A run's plan: its id and the self-contained sample messages of the selected tasks.

Every sample of every task (train and test) is one unit of work. A message carries all a worker
needs — run id, task id, kind and index, ``S``, the input, the expected output or None, the batt
reference and the time limit — so workers need no copy of the data set.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from batt_tasks.grids import to_json
from producer.data import Task


def new_run_id() -> str:
    """A sortable, unique run id: ``20261128-153012-3f9a1c``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def sample_messages(
    run_id: str, tasks: Mapping[str, Task], ids: Iterable[str], batt: str, time_limit: float, generation: int = 0
) -> list[dict[str, Any]]:
    """One JSON-ready message per sample: each task's train samples, then its test samples."""
    messages: list[dict[str, Any]] = []
    for task_id in ids:
        task = tasks[task_id]
        S = [[to_json(i), to_json(o)] for i, o in task.train]
        for kind, pairs in (("train", task.train), ("test", task.test)):
            for index, (grid, expected) in enumerate(pairs):
                messages.append(
                    {
                        "run_id": run_id,
                        "task_id": task_id,
                        "kind": kind,
                        "index": index,
                        "S": S,
                        "input": to_json(grid),
                        "expected": None if expected is None else to_json(expected),
                        "batt": batt,
                        "time_limit": time_limit,
                        "generation": generation,
                    }
                )
    return messages


def sample_counts(messages: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many samples each task has in the plan."""
    counts: dict[str, int] = {}
    for m in messages:
        counts[m["task_id"]] = counts.get(m["task_id"], 0) + 1
    return counts
