"""A batt module whose import raises (the ``batt`` below is never reached)."""

from __future__ import annotations

from typing import Any


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """Never callable: the module fails to import."""
    return [], []


raise RuntimeError("import_fails refuses to be imported")
