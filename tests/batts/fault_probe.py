"""Fault-suite batt: records every execution, takes a little time, and misbehaves on chosen samples.

Environment (read on every call, in the worker's pool process):

- ``BATT_FAULT_LOG``: JSON-lines file; each call appends ``{"event": "start"|"done", "pass": "solve"|"diff",
  "task", "input" (digest of the sample's input grid), "node", "pid", "t"}`` with one ``os.write`` of an
  ``O_APPEND`` file, so lines from many processes (and network namespaces) never interleave.
- ``BATT_FAULT_NODE``: the name of the worker running this batt (written in the log).
- ``BATT_FAULT_SLEEP``: seconds slept per call (default 0.02), so a run lasts long enough to be hit.
- ``BATT_FAULT_TARGETS``: comma-separated task ids whose ``train[0]`` sample gets ``BATT_FAULT_ACTION``.
- ``BATT_FAULT_ACTION``: what a target sample does on its solve pass (``fault_hang.py``, ``fault_exit.py``,
  ``fault_segfault.py`` and ``fault_memory.py`` fix the action instead, so one worker can run them all):

  - ``slow``: sleeps ``BATT_FAULT_SLOW_SECONDS`` (default 3), so a test can hit it mid-sample;
  - ``hang``: sleeps forever and swallows every exception, the soft time limit's included;
  - ``exit``: ``os._exit(1)``, the pool process vanishes;
  - ``kill_worker``: SIGKILLs the worker's main process (the pool process's parent), then exits: the whole
    worker dies on this sample, every time (a "poison" sample);
  - ``segfault``: reads address 0 through ctypes (SIGSEGV);
  - ``memory``: allocates (and touches) ``BATT_FAULT_MEMORY_STEP_MB`` (default 8) every 10 ms, without bound;
    when the time limit stops it, a ``"grew"`` event with ``"mb"`` records how much it held.

A sample is named by its task id and the digest of its input grid (:func:`input_digest`); the fault
suite maps digests back to ``kind[index]`` with the task data.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any


def input_digest(grid: Any) -> str:
    """A short, stable digest of a grid (tuples or lists of ints)."""
    rows = ";".join(",".join(str(int(v)) for v in row) for row in grid)
    return hashlib.sha1(rows.encode()).hexdigest()[:12]


def _log(event: str, task_id: str, digest: str, which: str, **extra: Any) -> None:
    path = os.environ.get("BATT_FAULT_LOG")
    if not path:
        return
    line = {
        "event": event,
        "pass": which,
        "task": task_id,
        "input": digest,
        "node": os.environ.get("BATT_FAULT_NODE", ""),
        "pid": os.getpid(),
        "t": time.time(),
        **extra,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)


def _hang() -> None:
    while True:
        # the point: a batt that swallows every exception, even the soft time limit's
        with contextlib.suppress(BaseException):
            time.sleep(3600)


def _misbehave(action: str, note: Callable[..., None]) -> None:
    if action == "slow":
        time.sleep(float(os.environ.get("BATT_FAULT_SLOW_SECONDS", "3")))
    elif action == "hang":
        _hang()
    elif action == "exit":
        os._exit(1)
    elif action == "kill_worker":
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)
    elif action == "segfault":
        ctypes.string_at(0)
    elif action == "memory":
        step = int(os.environ.get("BATT_FAULT_MEMORY_STEP_MB", "8")) << 20
        hoard = []
        try:
            while True:
                chunk = bytearray(step)
                chunk[::4096] = b"\1" * len(range(0, step, 4096))  # touch every page: resident, not just reserved
                hoard.append(chunk)
                time.sleep(0.01)
        finally:  # the time limit's exception ends the growth: record how far it got
            note("grew", mb=len(hoard) * step >> 20)
    elif action:
        raise ValueError(f"unknown BATT_FAULT_ACTION {action!r}")


def probe(task_id: str, S: Any, I: Any, C: Any, action: str | None = None) -> tuple[list[Any], list[Any]]:
    """Log the call, sleep, misbehave on targets (solve pass of ``train[0]``), return one 'identity' candidate."""
    digest = input_digest(I)
    which = "solve" if C is None else "diff"
    _log("start", task_id, digest, which)
    targets = {t for t in os.environ.get("BATT_FAULT_TARGETS", "").split(",") if t}
    if which == "solve" and task_id in targets and S and S[0][0] == I:
        _misbehave(
            os.environ.get("BATT_FAULT_ACTION", "") if action is None else action,
            lambda event, **extra: _log(event, task_id, digest, which, **extra),
        )
    time.sleep(float(os.environ.get("BATT_FAULT_SLEEP", "0.02")))
    _log("done", task_id, digest, which)
    return [(0, False, "identity", I)], []


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:
    """The probe with the action of ``BATT_FAULT_ACTION``."""
    return probe(task_id, S, I, C)
