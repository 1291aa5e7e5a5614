"""What a report says about a run, computed from its task lines: task outcomes, candidates, costs.

Pure functions of ``results.jsonl`` lines (see :func:`batt_tasks.scoring.aggregate_task`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batt_tasks.scoring import MATCH_SCORE

Line = Mapping[str, Any]

# Task outcomes, in the order the report lists them.
SOLVED, TRAIN_PERFECT, UNSOLVED, ERRORED, UNSCORED = "solved", "train-perfect", "unsolved", "errored", "unscored"
OUTCOMES: dict[str, str] = {
    SOLVED: "Solved",
    TRAIN_PERFECT: "Train-perfect, test failed",
    UNSOLVED: "Unsolved",
    ERRORED: "Errored or timed out",
    UNSCORED: "Unscored (test output unknown)",
}


def outcome(line: Line) -> str:
    """A task's outcome: solved; else errored (a sample failed); else unscored; train-perfect; unsolved."""
    if line["solved"]:
        return SOLVED
    if line["errors"] or line["timeouts"]:
        return ERRORED
    if line["solved"] is None:
        return UNSCORED
    return TRAIN_PERFECT if line["train_perfect"] else UNSOLVED


def best_candidates(line: Line, n: int = 3) -> list[tuple[str, int, int]]:
    """The ``n`` best candidates of a task: (id, train score, test score), by train then test score."""
    train, test = line["train_scores"], line["test_scores"]
    ids = sorted(set(train) | set(test), key=lambda c: (-train.get(c, 0), -test.get(c, 0), c))
    return [(c, train.get(c, 0), test.get(c, 0)) for c in ids[:n]]


@dataclass
class CandidateStats:
    """One candidate over a run's tasks."""

    solved: int = 0  # scored tasks whose every test output it matched
    train_perfect: int = 0  # tasks whose every train output it matched
    matched: int = 0  # samples (train and test) whose output it matched

    def key(self) -> tuple[int, int, int]:
        return (self.solved, self.train_perfect, self.matched)


def candidate_stats(lines: Iterable[Line]) -> dict[str, CandidateStats]:
    """Per candidate that matched anything: tasks solved, tasks train-perfect, samples matched."""
    stats: dict[str, CandidateStats] = {}
    for line in lines:
        n_test = line["samples"]["test"]
        for cid, score in line["train_scores"].items():
            stats.setdefault(cid, CandidateStats()).matched += score // MATCH_SCORE
        for cid, score in line["test_scores"].items():
            s = stats.setdefault(cid, CandidateStats())
            s.matched += score // MATCH_SCORE
            if line["solved"] is not None and score == MATCH_SCORE * n_test:
                s.solved += 1
        for cid in line["train_perfect"]:
            stats.setdefault(cid, CandidateStats()).train_perfect += 1
    return stats


def leaderboard(stats: Mapping[str, CandidateStats]) -> list[tuple[str, CandidateStats]]:
    """Candidates best first: by tasks solved, then train-perfect, then samples matched, then id."""
    return sorted(stats.items(), key=lambda kv: (tuple(-v for v in kv[1].key()), kv[0]))


def sample_costs(lines: Iterable[Line]) -> tuple[list[float], bool]:
    """Every sample's cost in seconds, and whether these are per-sample figures.

    Runs written before task lines carried ``sample_seconds`` give each task's mean per sample instead
    (False).
    """
    costs: list[float] = []
    exact = True
    for line in lines:
        if "sample_seconds" in line:
            costs.extend(float(s) for s in line["sample_seconds"])
        else:
            exact = False
            n = line["samples"]["train"] + line["samples"]["test"]
            costs.extend([float(line["seconds"]) / n] * n if n else [])
    return costs, exact


# Histogram bucket edges in ms: 1-2-5 steps from 1 ms to 100 s.
EDGES_MS: tuple[float, ...] = tuple(m * 10**e for e in range(6) for m in (1, 2, 5))


def histogram(costs_s: Iterable[float]) -> list[tuple[str, int]]:
    """(label, count) of per-sample costs in 1-2-5 ms buckets, from the first to the last non-empty one."""
    counts = [0] * (len(EDGES_MS) + 1)
    for c in costs_s:
        counts[bisect_right(EDGES_MS, c * 1000)] += 1
    labels = [f"< {_ms(EDGES_MS[0])}"]
    labels += [f"{_ms(a)}–{_ms(b)}" for a, b in zip(EDGES_MS, EDGES_MS[1:], strict=False)]
    labels += [f"≥ {_ms(EDGES_MS[-1])}"]
    used = [i for i, n in enumerate(counts) if n]
    if not used:
        return []
    return [(labels[i], counts[i]) for i in range(used[0], used[-1] + 1)]


def _ms(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"


def slowest(lines: Iterable[Line], n: int = 10) -> list[Line]:
    """The ``n`` tasks that took longest (sum of their samples' costs)."""
    return sorted(lines, key=lambda t: (-float(t["seconds"]), t["task_id"]))[:n]
