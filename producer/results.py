"""A run's result files under ``--out/<run_id>/``.

- ``results.jsonl``: one line per task, appended and flushed as each task completes, so a crash
  keeps every finished task. Never rewritten.
- ``submission.json``: ARC Prize format, ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``
  with one dict per test input, written atomically at the end (also after an interrupt).
- ``summary.json``: the run's options, counts and timings, written atomically at the end.
- ``batt.log``: the batt's ``log_path`` in local mode, and its stdout/stderr.
- ``errors.log``: the traceback of the first failed sample of each kind (see :mod:`producer.failures`).
- ``plan.json``: the run's plan, so that ``--resume``/``--status`` work without the broker (see
  :mod:`producer.plan_file`).

Every file follows the umask.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from producer.errors import UsageError

EMPTY_ATTEMPT = [[0]]  # what the ARC Prize format expects when a candidate gave no attempt


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no other way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, with permissions ``mode``, else the
    mode an ordinary file gets.

    ``mkstemp`` creates its file 0600; the result files follow the umask like ``results.jsonl`` does, so
    a results directory bind-mounted from a container is readable on the host.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(value, separators=(",", ":")))  # dumps: C encoder; dump streams in Python


def prepare_out(out: str) -> Path:
    """Create ``--out`` if needed and check it is writable, or raise :class:`UsageError`."""
    base = Path(out).expanduser()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--out {out}: cannot create the directory ({exc.strerror}); pass a writable directory"
        ) from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: the directory is not writable; pass a writable directory")
    return base


def submission_entry(predictions: list[list[Any]]) -> list[dict[str, Any]]:
    """One ARC Prize submission entry: ``attempt_1``/``attempt_2`` per test input."""
    entries = []
    for attempts in predictions:
        first = attempts[0] if attempts else EMPTY_ATTEMPT
        second = attempts[1] if len(attempts) > 1 else first
        entries.append({"attempt_1": first, "attempt_2": second})
    return entries


def read_results(path: Path) -> list[dict[str, Any]]:
    """The task lines of a ``results.jsonl``, ignoring a torn last line left by a crash."""
    lines: list[dict[str, Any]] = []
    if not path.exists():
        return lines
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for the block, then act on one that came in as if it had arrived just now.

    A task line must be written to ``results.jsonl`` and recorded for ``submission.json`` together,
    or not at all; an interrupt in between would leave the files disagreeing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line (the producer died while writing it) so the next line starts on its own."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class RunWriter:
    """Writes one run's files; appends task lines at once and the rest at :meth:`finish`.

    With ``base`` None it writes nothing and only keeps the task lines (a run with ``out=None``).
    """

    def __init__(self, base: Path | None, run_id: str) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self._file: Any = None
        self.dir: Path | None = None
        self.results_path: Path | None = None
        self.log_path: Path | None = None
        if base is None:
            return
        self.dir = base / run_id
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"--out {base}: cannot create {self.dir} ({exc.strerror}); pass a writable directory"
            ) from None
        self.results_path = self.dir / "results.jsonl"
        self.log_path = self.dir / "batt.log"
        _drop_torn_tail(self.results_path)
        self.tasks = {t["task_id"]: t for t in read_results(self.results_path)}
        self._file = open(self.results_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run's life

    def add_task(self, line: Mapping[str, Any]) -> bool:
        """Append one task's line and flush it; a task already written is not written again."""
        if line["task_id"] in self.tasks:
            return False
        if self._file is None:
            self.tasks[line["task_id"]] = dict(line)
            return True
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with _signals_held():
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.tasks[line["task_id"]] = dict(line)
        return True

    def finish(self, summary: Mapping[str, Any], order: Iterable[str] | None = None) -> None:
        """Close ``results.jsonl``; write ``submission.json`` and ``summary.json`` atomically."""
        if self.dir is None:
            return
        self._file.close()
        ids = [t for t in (order or sorted(self.tasks)) if t in self.tasks]
        write_json_atomic(
            self.dir / "submission.json", {t: submission_entry(self.tasks[t]["predictions"]) for t in ids}
        )
        write_json_atomic(self.dir / "summary.json", dict(summary))

    def remove_if_empty(self) -> None:
        """Remove the run directory when nothing was written to it (a run that stopped before any work)."""
        if self.dir is None:
            return
        self._file.close()
        for name in ("results.jsonl", "batt.log"):
            path = self.dir / name
            if path.exists() and path.stat().st_size == 0:
                path.unlink()
        with suppress(OSError):
            self.dir.rmdir()
