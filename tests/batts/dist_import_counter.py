"""Test batt: appends its pid to $BATT_TEST_IMPORT_LOG each time the module is imported."""

import os

with open(os.environ["BATT_TEST_IMPORT_LOG"], "a") as _log:
    _log.write(f"{os.getpid()}\n")


def batt(task_id, S, I, C, log_path):
    return [(0, False, "identity", I)], []
