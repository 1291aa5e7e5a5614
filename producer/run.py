"""One run from start to finish: plan → results (from local mode or the cluster) → files → summary.

The source of sample results is an iterator; :func:`drive` does the rest the same way for every
mode, so local and distributed runs write the same files.
"""

from __future__ import annotations

import gc
import resource
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from producer.collect import Collector
from producer.failures import FailureTracker
from producer.progress import RunProgress
from producer.results import RunWriter


@dataclass
class RunState:
    """What a run has done so far; turned into ``summary.json``."""

    run_id: str
    mode: str
    options: dict[str, Any]
    order: list[str]
    collector: Collector
    writer: RunWriter
    started: float = field(default_factory=time.monotonic)
    interrupted: bool = False
    failures: FailureTracker | None = None
    stopped: str | None = None  # why the run stopped early (StopRun), if it did

    def summary(self) -> dict[str, Any]:
        """The run's summary: options, counts, solved tasks, timings and peak memory."""
        c = self.collector
        lines = [self.writer.tasks[t] for t in self.order if t in self.writer.tasks]
        wall = time.monotonic() - self.started
        peak_kb = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "options": self.options,
            "seed": self.options.get("seed"),
            "dir": None if self.writer.dir is None else str(self.writer.dir),
            "tasks": len(self.order),
            "tasks_done": len(lines),
            "samples": c.samples_total,
            "samples_done": c.samples_done,
            "ok": c.status_counts.get("ok", 0),
            "timeouts": c.status_counts.get("timeout", 0),
            "errors": c.status_counts.get("error", 0),
            "tasks_scored": sum(1 for t in lines if t["solved"] is not None),
            "solved": sum(1 for t in lines if t["solved"]),
            "solved_ids": [t["task_id"] for t in lines if t["solved"]],
            "wall_seconds": round(wall, 3),
            "samples_per_second": round(c.samples_done / wall, 3) if wall > 0 else 0.0,
            "sample_ms": c.cost_ms(),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "interrupted": self.interrupted,
            "stopped": self.stopped,
            "error_kinds": self.failures.top() if self.failures is not None else [],
        }


_frozen = {"depth": 0, "ours": False}
_frozen_lock = threading.Lock()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """While a run collects results, the objects that existed before it (the imports, the Celery app, the tasks'
    grids, the plan's messages: a few hundred thousand) are left out of the garbage collector's scans
    (``gc.freeze``); they are put back when the last run in the process ends (``gc.unfreeze``).

    Each sample result allocates enough to trigger collections, and a full one scanned all of them: about
    0.3 ms of CPU per sample of the built-in battery, taken from the workers when they share the machine.
    Nothing is frozen when something else in the process already froze objects (``gc.get_freeze_count()``):
    that freeze is the caller's, and left alone.
    """
    with _frozen_lock:
        if _frozen["depth"] == 0:
            _frozen["ours"] = gc.get_freeze_count() == 0
            if _frozen["ours"]:
                gc.freeze()
        _frozen["depth"] += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen["depth"] -= 1
            if _frozen["depth"] == 0 and _frozen["ours"]:
                gc.unfreeze()
                _frozen["ours"] = False


def drive(state: RunState, results: Iterator[Mapping[str, Any]], progress: RunProgress) -> Iterator[dict[str, Any]]:
    """Feed each sample result to the collector; append each completed task to ``results.jsonl`` and yield
    its line.

    Failures go to the run's :class:`FailureTracker` after the sample is recorded; it may stop the run
    (:class:`producer.errors.StopRun`)."""
    for result in results:
        progress.sample(result)
        line = state.collector.add(result)
        if line is not None and state.writer.add_task(line):
            progress.task()
            yield line
        if state.failures is not None:
            state.failures.add(result)
