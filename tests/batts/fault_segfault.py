"""Fault-suite batt: on ``train[0]`` of the tasks in ``BATT_FAULT_TARGETS`` it
segfaults (``ctypes.string_at(0)``).

Every other sample is the probe's (see ``fault_probe.py``): logged, a short sleep, one 'identity' candidate.
"""

from __future__ import annotations

from typing import Any

from fault_probe import probe


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:
    """The probe, with the ``segfault`` fault on target samples."""
    return probe(task_id, S, I, C, action="segfault")
