"""The built-in battery: ARC candidate programs on a small grid DSL, behind the batt protocol.

``batt(task_id, S, I, C, log_path) -> (o, s)``:

- solve pass (``C`` is None): ``o`` holds one ``(t_n, False, candidate_id, output)`` per candidate that
  produced a valid grid, ``t_n`` being the candidate's position in :data:`CANDIDATES`; ``s`` is empty.
- diff pass (``C`` is the expected output): ``o`` is the same list (served from a small in-process cache
  when the solve pass just ran) and ``s`` holds a ``cell_diff`` differ score (cells differing from ``C``,
  clamped to 0-1000) for every candidate with an output, of every family.

A candidate that raises has no output for that sample; it never takes the others down. Only a worker's
soft time limit (:data:`learn.FATAL`) passes through, so the task can report the timeout. Every
candidate's cost is bounded by design (grids are at most 30×30, object counts are capped), not by
threads or signals. Outputs depend only on the inputs: no set-order or hash-seed dependence.

Modules: :mod:`.dsl` (grid primitives), :mod:`.objects` (connected components and selectors),
:mod:`.learn` (parameters learned from ``S``), :mod:`.rules` (learned rule families),
:mod:`.candidates` (the registry of candidate ids).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from batt_tasks.battery.candidates import CANDIDATES, Candidate
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import FATAL, Context

__all__ = ["CANDIDATES", "Candidate", "batt", "cell_diff", "run_candidates"]

Entry = tuple[int, bool, str, Grid]

_CACHE_SIZE = 64
_cache: OrderedDict[tuple[Any, ...], list[Entry]] = OrderedDict()


def _freeze(grid: Any) -> Grid:
    return tuple(tuple(int(v) for v in row) for row in grid)


def _valid(grid: Any) -> bool:
    if not isinstance(grid, tuple) or not grid or len(grid) > 30:
        return False
    width = len(grid[0]) if isinstance(grid[0], tuple) else 0
    if not 1 <= width <= 30:
        return False
    for row in grid:
        if not isinstance(row, tuple) or len(row) != width:
            return False
        for v in row:
            if type(v) is not int or not 0 <= v <= 9:
                return False
    return True


def run_candidates(task_id: str, S: Any, I: Any) -> list[Entry]:  # noqa: E741 - the protocol's name
    """Every candidate's output on ``I`` given the train pairs ``S`` (candidates without output are left out)."""
    pairs = tuple((_freeze(i), _freeze(o)) for i, o in S)
    grid = _freeze(I)
    key = (task_id, pairs, grid)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    ctx = Context(task_id, pairs, grid)
    out: list[Entry] = []
    for t_n, cand in enumerate(CANDIDATES):
        try:
            result = cand.fn(ctx, grid)
            if not _valid(result):
                result = _freeze(result)
        except FATAL:
            raise
        except Exception:  # noqa: BLE001, S112 - a failing candidate just has no output
            continue
        if _valid(result):
            out.append((t_n, False, cand.cid, result))
    _cache[key] = out
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return out


def cell_diff(a: Grid, b: Grid) -> int:
    """Cells that differ between two grids, clamped to 0-1000; grids of different shapes differ in every cell."""
    if len(a) != len(b) or len(a[0]) != len(b[0]):
        return min(1000, max(len(a) * len(a[0]), len(b) * len(b[0])))
    return min(
        1000,
        sum(sum(x != y for x, y in zip(ra, rb, strict=True)) for ra, rb in zip(a, b, strict=True) if ra != rb),
    )


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Entry], list[Any]]:  # noqa: E741
    """The batt protocol entry point (see the module docstring); ``log_path`` is accepted and not written."""
    o = run_candidates(task_id, S, I)
    s: list[Any] = []
    if C is not None:
        expected = _freeze(C)
        seen: dict[Grid, int] = {}  # many candidates give the same grid
        for t_n, _, cid, grid in o:
            score = seen.get(grid)
            if score is None:
                score = seen[grid] = cell_diff(grid, expected)
            s.append((t_n, cid, "cell_diff", (score,)))
    return list(o), s
