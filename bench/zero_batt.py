"""The zero-work batt: returns at once, so a run measures nothing but the path a sample travels.

One candidate, ``identity``, whose output is the input: results stay small and every mode can still
be checked to score identically. Used by ``python -m bench.run`` to measure per-sample queue overhead.
"""

from __future__ import annotations

from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: N803
    """One ``identity`` candidate, no differ scores."""
    return [(0, False, "identity", I)], []
