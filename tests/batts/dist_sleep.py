"""Test batt: one 'identity' candidate, after sleeping BATT_TEST_SLEEP seconds (default 0.3) per call."""

import os
import time


def batt(task_id, S, I, C, log_path):
    time.sleep(float(os.environ.get("BATT_TEST_SLEEP", "0.3")))
    return [(0, False, "identity", I)], []
