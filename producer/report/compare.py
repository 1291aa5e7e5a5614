"""One run against another (``batt-report RUN --against OTHER``): what changed between two iterations.

Run A is the one reported on, run B the one it is compared against. Only the task ids both ran are
compared; runs over different data or splits are compared that way too, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from producer.report.load import Run
from producer.report.stats import CandidateStats, candidate_stats


@dataclass
class Comparison:
    """Run ``a`` against run ``b``."""

    a: Run
    b: Run
    shared: list[str]
    only_a: list[str]
    only_b: list[str]
    gained: list[str]  # solved in A, not in B
    lost: list[str]  # solved in B, not in A
    candidates: list[tuple[str, CandidateStats, CandidateStats]] = field(default_factory=list)
    warning: str | None = None

    def line(self) -> str:
        """The one-line summary printed to the terminal and shown atop the report."""
        solved_a = sum(1 for t in self.shared if self.a.lines[t]["solved"])
        solved_b = sum(1 for t in self.shared if self.b.lines[t]["solved"])
        parts = [
            f"+{len(self.gained)} solved",
            f"−{len(self.lost)} lost",
            f"{len(self.only_a)} task{'' if len(self.only_a) == 1 else 's'} only in A",
            f"{len(self.only_b)} only in B",
        ]
        return (
            ", ".join(parts) + f" (A {self.a.run_id} vs B {self.b.run_id}: "
            f"{solved_b} → {solved_a} solved of {len(self.shared)} shared tasks)"
        )


def compare(a: Run, b: Run) -> Comparison:
    """Compare run ``a`` against run ``b`` on the task ids they share."""
    shared = sorted(set(a.lines) & set(b.lines))
    gained = [t for t in shared if a.lines[t]["solved"] and not b.lines[t]["solved"]]
    lost = [t for t in shared if b.lines[t]["solved"] and not a.lines[t]["solved"]]
    stats_a = candidate_stats(a.lines[t] for t in shared)
    stats_b = candidate_stats(b.lines[t] for t in shared)
    empty = CandidateStats()
    deltas = [
        (cid, stats_a.get(cid, empty), stats_b.get(cid, empty))
        for cid in set(stats_a) | set(stats_b)
        if stats_a.get(cid, empty) != stats_b.get(cid, empty)
    ]
    deltas.sort(
        key=lambda d: (
            -abs(d[1].solved - d[2].solved),
            -abs(d[1].train_perfect - d[2].train_perfect),
            -abs(d[1].matched - d[2].matched),
            d[0],
        )
    )
    warning = None
    if a.data_label() != b.data_label():
        warning = (
            f"the runs are over different data (A: {a.data_label()}, B: {b.data_label()}); "
            f"compared on the {len(shared)} task ids they share"
        )
    return Comparison(
        a,
        b,
        shared,
        sorted(set(a.lines) - set(b.lines)),
        sorted(set(b.lines) - set(a.lines)),
        gained,
        lost,
        deltas,
        warning,
    )
