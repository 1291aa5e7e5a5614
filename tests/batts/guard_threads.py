"""Test batt for the worker guard: starts (and joins) one thread per call, logging every attempt.

Each call appends ``{"task_id", "pid", "time", "outcome"}`` to the JSON-lines file named by
``BATT_GUARD_TEST_LOG`` (if set): ``ok``, ``fail: <message>`` when the thread cannot start (the
RuntimeError propagates), or ``boom`` for task ids starting with ``boom``, which raise a different
RuntimeError. ``BATT_TEST_SLEEP`` seconds (default 0) are slept after the thread ran.
"""

import json
import os
import threading
import time


def _note(task_id, outcome):
    path = os.environ.get("BATT_GUARD_TEST_LOG")
    if path:
        line = json.dumps({"task_id": task_id, "pid": os.getpid(), "time": time.time(), "outcome": outcome})
        with open(path, "a") as f:
            f.write(line + "\n")


def batt(task_id, S, I, C, log_path):  # noqa: E741, N803
    if task_id.startswith("boom"):
        _note(task_id, "boom")
        raise RuntimeError("the batt broke")
    box = []
    try:
        t = threading.Thread(target=box.append, args=(I,))
        t.start()
        t.join()
    except RuntimeError as exc:
        _note(task_id, f"fail: {exc}")
        raise
    _note(task_id, "ok")
    time.sleep(float(os.environ.get("BATT_TEST_SLEEP", "0")))
    return [(0, False, "identity", box[0])], []
