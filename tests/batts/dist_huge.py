"""Test batt: 3000 candidates with distinct 30x30 grids — a test-sample result far over the size bound."""


def batt(task_id, S, I, C, log_path):
    body = tuple(tuple((r + c) % 10 for c in range(30)) for r in range(1, 30))
    out = []
    for n in range(3000):
        head = tuple(int(d) for d in str(n).zfill(30))
        out.append((n, False, f"c{n}", (head, *body)))
    return out, []
