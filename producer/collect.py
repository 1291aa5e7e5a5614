"""Gathering sample results into task results, and the run's counters, whatever mode produced them."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from batt_tasks.scoring import STATUS_ERROR, STATUS_OK, STATUS_TIMEOUT, aggregate_task


class Collector:
    """Holds sample results until all of a task's samples are in, then aggregates the task.

    A sample reported twice (a redelivered message that ran twice) counts once.
    """

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.expected = dict(counts)
        self.pending: dict[str, dict[tuple[str, int], dict[str, Any]]] = {t: {} for t in counts}
        self.done_tasks: set[str] = set()
        self.samples_done = 0
        self.status_counts = {STATUS_OK: 0, STATUS_ERROR: 0, STATUS_TIMEOUT: 0}
        self.sample_seconds: list[float] = []

    @property
    def samples_total(self) -> int:
        return sum(self.expected.values())

    def add(self, result: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record one sample result; return the task's aggregated line when it completes the task."""
        task_id = result["task_id"]
        if task_id in self.done_tasks or task_id not in self.pending:
            return None
        key = (result["kind"], int(result["index"]))
        bucket = self.pending[task_id]
        if key in bucket:
            return None
        bucket[key] = dict(result)
        self.samples_done += 1
        self.status_counts[result["status"]] = self.status_counts.get(result["status"], 0) + 1
        if result["status"] == STATUS_OK:
            self.sample_seconds.append(float(result.get("seconds", 0.0)))
        if len(bucket) < self.expected[task_id]:
            return None
        self.done_tasks.add(task_id)
        del self.pending[task_id]
        return aggregate_task(task_id, bucket.values())

    def mark_done(self, line: Mapping[str, Any]) -> None:
        """Count a task that was already complete (read back from results.jsonl) as done."""
        task_id = line["task_id"]
        if task_id in self.done_tasks or task_id not in self.expected:
            return
        self.done_tasks.add(task_id)
        self.pending.pop(task_id, None)
        self.samples_done += self.expected[task_id]
        self.status_counts[STATUS_OK] += int(line.get("ok", 0))
        self.status_counts[STATUS_ERROR] += int(line.get("errors", 0))
        self.status_counts[STATUS_TIMEOUT] += int(line.get("timeouts", 0))

    def cost_ms(self) -> dict[str, float | None]:
        """Median and 95th percentile of the per-sample cost (solve and diff pass), in ms."""
        xs = sorted(self.sample_seconds)
        if not xs:
            return {"median": None, "p95": None}
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        return {"median": round(statistics.median(xs) * 1000, 3), "p95": round(p95 * 1000, 3)}
