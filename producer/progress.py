"""The run's progress bar (on stderr) and its summary table (on stdout), drawn with rich."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

TABLE_KINDS = 5  # the most frequent kinds of failure the summary table lists
err_console = Console(stderr=True)
out_console = Console()


def say(message: str, quiet: bool = False) -> None:
    """A one-line notice on stderr (suppressed by ``-q`` unless it is a warning the caller forces)."""
    if not quiet:
        err_console.print(message, highlight=False, soft_wrap=True)


class RunProgress:
    """samples done/total, tasks done, timeouts, errors, rate and ETA; a no-op when quiet."""

    def __init__(
        self,
        samples: int,
        tasks: int,
        quiet: bool,
        done_samples: int = 0,
        done_tasks: int = 0,
        console: Console | None = None,
    ) -> None:
        self.tasks_total = tasks
        self.tasks_done = done_tasks
        self.timeouts = 0
        self.errors = 0
        self._progress: Progress | None = None
        self._id: TaskID | None = None
        if not quiet:
            self._progress = Progress(
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("samples · tasks {task.fields[tasks]} · timeouts {task.fields[timeouts]}"),
                TextColumn("· errors {task.fields[errors]} · {task.fields[rate]} ·"),
                TimeElapsedColumn(),
                TextColumn("elapsed ·"),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=console or err_console,
                transient=False,
            )
            self._id = self._progress.add_task("run", total=samples, completed=done_samples, **self._fields())

    def _fields(self) -> dict[str, Any]:
        rate = ""
        if self._progress is not None and self._id is not None:
            speed = self._progress.tasks[0].speed
            rate = f"{speed:.1f}/s" if speed else "-/s"
        return {
            "tasks": f"{self.tasks_done}/{self.tasks_total}",
            "timeouts": self.timeouts,
            "errors": self.errors,
            "rate": rate,
        }

    def sample(self, result: Mapping[str, Any]) -> None:
        """One more sample came in."""
        if result["status"] == "timeout":
            self.timeouts += 1
        elif result["status"] == "error":
            self.errors += 1
        if self._progress is not None and self._id is not None:
            self._progress.update(self._id, advance=1)
            self._progress.update(self._id, **self._fields())

    def task(self) -> None:
        """One more task is complete."""
        self.tasks_done += 1
        if self._progress is not None and self._id is not None:
            self._progress.update(self._id, **self._fields())

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary_table(summary: Mapping[str, Any]) -> Table:
    """The end-of-run table."""
    table = Table(title=f"batt-queue run {summary['run_id']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    cost = summary.get("sample_ms") or {}
    if cost.get("median") is None:
        cost_text = "- (no sample succeeded)"
    else:
        cost_text = f"median {cost['median']:.1f} ms, p95 {cost['p95']:.1f} ms (successful samples)"
    solved = summary["solved"]
    rows = [
        ("mode", summary["mode"]),
        ("tasks", f"{summary['tasks_done']}/{summary['tasks']}"),
        ("samples", f"{summary['samples_done']}/{summary['samples']}"),
        ("solved", f"{solved}/{summary['tasks_scored']} scored tasks"),
        ("timeouts", str(summary["timeouts"])),
        ("errors", str(summary["errors"])),
        ("wall time", f"{summary['wall_seconds']:.2f} s"),
        ("rate", f"{summary['samples_per_second']:.2f} samples/s"),
        ("sample cost", cost_text),
        ("results", summary["dir"]),
    ]
    for kind in (summary.get("error_kinds") or [])[:TABLE_KINDS]:
        rows.append((f"{kind['status']} ×{kind['count']}", escape(f"{kind['error']} (first: {kind['first']})")))
    if summary.get("interrupted"):
        rows.insert(0, ("status", "[red]interrupted[/red]"))
    elif summary.get("stopped"):
        rows.insert(0, ("status", f"[red]stopped[/red]: {escape(summary['stopped'])}"))
    for k, v in rows:
        table.add_row(k, v)
    return table
