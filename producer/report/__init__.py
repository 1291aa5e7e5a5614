"""The HTML report of a run (``batt-report``, ``batt-submit --report``), optionally against another run.

- :mod:`~producer.report.load`: a run read back from its directory, and its tasks from its data;
- :mod:`~producer.report.stats` and :mod:`~producer.report.compare`: what the report says;
- :mod:`~producer.report.grids` and :mod:`~producer.report.html`: the page, a pure function of the above;
- :mod:`~producer.report.cli`: the ``batt-report`` command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from producer.errors import Interrupted, UsageError
from producer.progress import say
from producer.report.compare import Comparison, compare
from producer.report.html import build_html
from producer.report.load import Run, find_run, load_run, load_run_tasks
from producer.results import write_text_atomic

__all__ = ["Report", "build_html", "compare", "find_run", "load_run", "report_after_run", "write_report"]

REPORT_NAME = "report.html"


@dataclass
class Report:
    """A written report: where, and what the comparison found (when there was one)."""

    path: Path
    run: Run
    comparison: Comparison | None
    data_note: str | None


def write_report(
    run: str | os.PathLike[str],
    against: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    out: str = "runs",
) -> Report:
    """Write the report of ``run`` (against the run ``against``) and return it.

    A run is a run directory or a run id under ``out``. The file goes to ``output``, else ``report.html`` in
    the run directory (``report-vs-<other run id>.html`` with ``against``). Raises
    :class:`~producer.errors.UsageError` for a run that is not found or not a run.
    """
    loaded = load_run(find_run(str(run), out))
    tasks, note = load_run_tasks(loaded)
    comparison = None
    if against is not None:
        comparison = compare(loaded, load_run(find_run(str(against), out)))
    if output is None:
        name = f"report-vs-{comparison.b.run_id}.html" if comparison else REPORT_NAME
        path = loaded.dir / name
    else:
        path = Path(output).expanduser()
    write_text_atomic(path, build_html(loaded, tasks, note, comparison), mode=0o644)
    return Report(path, loaded, comparison, note)


def report_after_run(run_dir: Path, quiet: bool = False) -> Path | None:
    """``batt-submit --report``: write ``report.html`` into the run directory, saying where (or why not).

    A report that cannot be written, or is interrupted, is a warning: it never fails the run, whose
    files are already written (``batt-report`` can write it later).
    """
    try:
        report = write_report(run_dir)
    except (UsageError, OSError, KeyboardInterrupt, Interrupted) as exc:
        say(f"warning: no report written ({exc or type(exc).__name__}); write it with: batt-report {run_dir}")
        return None
    if report.data_note:
        say(f"warning: report: {report.data_note}")
    say(f"report: {report.path}", quiet)
    return report.path
