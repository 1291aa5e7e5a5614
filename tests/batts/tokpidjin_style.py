"""A batt written the way tokpidjin generates them: straight-line code, ``try/except`` around each
DSL call, ``o``/``s`` lists filled as it goes and ``(o, s)`` returned.

Candidates: ``cand_identity``, ``cand_flip`` (mirror left-right), ``cand_shatter`` (its call always
fails, so its output is None) and ``cand_rot`` (rotate clockwise). On the diff pass it adds
``cell_diff`` scores for ``cand_flip`` and ``cand_identity``, an ``overshoot`` score of 5000 for
candidate ``'None'`` (clamped to 1000) and an ``undershoot`` of -7 for ``cand_rot`` (clamped to 0).
"""

from tok_dsl import cell_diff, flip_h, identity, rot90, shatter


def batt(task_id, S, I, C, log_path):  # noqa: E741 - tokpidjin's signature, untyped like the generated code
    s = []
    o = []
    try:
        t1 = identity(I)
    except (TypeError, AttributeError, ValueError):
        t1 = None
    try:
        t2 = flip_h(t1)
    except (TypeError, AttributeError, ValueError):
        t2 = None
    try:
        t3 = shatter(I)
    except (TypeError, AttributeError, ValueError):
        t3 = None
    try:
        t4 = rot90(I)
    except (TypeError, AttributeError, ValueError):
        t4 = None
    o.append((1, False, "cand_identity", t1))
    o.append((2, False, "cand_flip", t2))
    o.append((3, False, "cand_shatter", t3))
    o.append((4, True, "cand_rot", t4))
    if C is not None:
        try:
            t5 = cell_diff(t2, C)
        except (TypeError, AttributeError, ValueError, IndexError):
            t5 = (0,)
        s.append((5, "cand_flip", "cell_diff", t5))
        try:
            t6 = cell_diff(t1, C)
        except (TypeError, AttributeError, ValueError, IndexError):
            t6 = (0,)
        s.append((6, "cand_identity", "cell_diff", t6))
        s.append((7, "None", "overshoot", (5000, "extra")))
        s.append((8, "cand_rot", "undershoot", (-7,)))
    print(f"tokpidjin_style stdout {task_id}")
    if log_path:
        with open(log_path, "a") as log:
            log.write(f"tokpidjin_style log {task_id} C={'set' if C is not None else 'None'}\n")
    return o, s
