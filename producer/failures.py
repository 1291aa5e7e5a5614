"""A run's failed samples as they come in: seen at once, kept with their tracebacks, and a stop rule.

- The first sample of each distinct failure (status and message) is announced once on stderr, with its
  sample key; later samples with the same failure only count.
- ``errors.log`` in the run directory gets the full traceback of that first sample of each kind (from a
  worker or the local child, whichever scored it; a sample killed by its time limit or a dead process
  has only its message).
- :meth:`FailureTracker.top` gives the most frequent kinds with their counts, for the summary.
- ``--max-errors N`` stops the run once N samples failed; and by default, when the first
  :data:`SAME_ERROR_WINDOW` samples to finish all failed with the same message, the run stops early
  (a batt broken everywhere should not burn the time limit on every sample). ``--max-errors 0`` turns
  both off. The stop is :class:`producer.errors.StopRun`, raised after the sample is recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from batt_tasks.scoring import STATUS_OK, sample_key
from producer.errors import StopRun

SAME_ERROR_WINDOW = 20  # the first this many finished samples all failing alike stops the run
TOP_KINDS = 10  # kinds kept in summary.json (the table shows fewer)

Kind = tuple[str, str]  # (status, message)


def _kind(result: Mapping[str, Any]) -> Kind:
    return str(result["status"]), str(result.get("error") or result["status"])


class FailureTracker:
    """Counts a run's failed samples by kind, announces and logs the first of each, and applies the stop rule.

    ``log_path`` None: nothing is logged (a run without files)."""

    def __init__(
        self,
        log_path: Path | None,
        announce: Callable[[str], None],
        max_errors: int | None = None,
        window: int = SAME_ERROR_WINDOW,
    ) -> None:
        self.log_path = log_path
        self.announce = announce
        self.max_errors = max_errors
        self.window = 0 if max_errors == 0 else window
        self.counts: Counter[Kind] = Counter()
        self.first: dict[Kind, str] = {}
        self.failed = 0  # failed samples finished in this session (what --max-errors counts)
        self.finished = 0
        self._early: set[Kind | None] = set()

    def seed(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Count the failures of tasks already written (a resumed run), without announcing them again."""
        for line in lines:
            for failure in line.get("failures", ()):
                kind = (str(failure["status"]), str(failure.get("error") or failure["status"]))
                self.counts[kind] += 1
                self.first.setdefault(kind, str(failure["sample"]))

    def add(self, result: Mapping[str, Any]) -> None:
        """Record one finished sample; raise :class:`StopRun` when the run should stop."""
        self.finished += 1
        ok = result["status"] == STATUS_OK
        kind = None if ok else _kind(result)
        if self.finished <= self.window:
            self._early.add(kind)
        if kind is not None:
            self.failed += 1
            self.counts[kind] += 1
            if kind not in self.first:
                key = sample_key(result["task_id"], result["kind"], int(result["index"]))
                self.first[kind] = key
                self._log(key, kind, result.get("traceback"))
                self.announce(f"{kind[0]} {key}: {kind[1]}")
        if self.max_errors and self.failed >= self.max_errors:
            raise StopRun(f"--max-errors {self.max_errors}: {self.failed} samples failed")
        if self.window and self.finished == self.window and len(self._early) == 1 and kind is not None:
            where = f" (traceback in {self.log_path})" if self.log_path is not None else ""
            raise StopRun(
                f"the first {self.window} samples all failed with the same {kind[0]} ({kind[1]}); "
                f"fix the batt{where}, or pass --max-errors 0 to run every sample anyway"
            )

    def _log(self, key: str, kind: Kind, traceback: str | None) -> None:
        if self.log_path is None:  # a run that writes no files (the API's out=None)
            return
        status, message = kind
        body = traceback.rstrip() if traceback else f"{message}\n(no traceback: the sample was stopped from outside)"
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"=== {status} {key}: {message}\n{body}\n\n")

    def top(self, n: int = TOP_KINDS) -> list[dict[str, Any]]:
        """The ``n`` most frequent kinds: status, message, count and the first sample that had it."""
        return [
            {"status": status, "error": message, "count": count, "first": self.first.get((status, message))}
            for (status, message), count in self.counts.most_common(n)
        ]
