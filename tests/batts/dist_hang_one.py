"""Test batt: hangs forever (a busy loop, so only a hard kill stops it) on train sample 0 of every task."""


def batt(task_id, S, I, C, log_path):
    if S and S[0][0] == I:
        while True:
            pass
    return [(0, False, "identity", I)], []
