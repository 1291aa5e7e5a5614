"""Test batt: sleeps in C with signals ignored-looking (time.sleep of an hour) on train sample 0."""

import time


def batt(task_id, S, I, C, log_path):
    if S and S[0][0] == I:
        try:
            time.sleep(3600)
        except Exception:  # noqa: BLE001 - like a tokpidjin batt: swallows everything, even the soft limit
            time.sleep(3600)
    return [(0, False, "identity", I)], []
