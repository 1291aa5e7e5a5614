"""Test batt for report comparisons: the built-in battery, changed so two runs differ in known ways.

- its ``colormap*`` candidates are dropped (tasks they solve are lost);
- on task ``0962bcdd`` an ``oracle`` candidate answers from the data (a task the battery does not solve);
- on task ``0d3d703e`` it raises, with HTML-special characters in the message.
"""

from __future__ import annotations

from typing import Any

from batt_tasks.battery import batt as battery

ORACLE_TASK = "0962bcdd"
ERROR_TASK = "0d3d703e"
_answers: dict[Any, Any] = {}


def _oracle(I: Any) -> Any:  # noqa: E741 - the protocol's name
    if not _answers:
        from producer.data import load_tasks

        task = load_tasks("arc-agi-1", "train")[ORACLE_TASK]
        _answers.update({i: o for i, o in (*task.train, *task.test)})
    return _answers.get(I)


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> Any:  # noqa: E741
    """The battery's answer, changed as the module docstring says."""
    if task_id == ERROR_TASK:
        raise ValueError("<b>boom</b> & 'quoted' \"text\"")
    o, s = battery(task_id, S, I, C, log_path)
    o = [entry for entry in o if not str(entry[2]).startswith("colormap")]
    if task_id == ORACLE_TASK:
        o.append((0, False, "oracle", _oracle(I)))
    return o, s
