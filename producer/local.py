"""Local sequential mode: one sample at a time in a single long-lived child process.

The child is started with the ``spawn`` method (never ``fork``: the producer may already hold
threads from a Celery/kombu client, and a fork after threads can deadlock). It imports the batt
once and then scores samples sent over a pipe, each batt call limited to ``-t`` inside the child
(:mod:`batt_tasks.call_limit`). The parent waits for each answer at most the sample's time limit
(both calls); a child that overruns that (a batt stuck in C code) or dies is killed and replaced, and
the sample is recorded as ``timeout`` or ``error``. The child is kept for the next run in the process. No semaphores or
queues are used, so an interrupted run leaves nothing for the resource tracker to complain about.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from batt_tasks.loader import BattLoadError, describe, is_path
from batt_tasks.scoring import STATUS_ERROR, STATUS_TIMEOUT, failed_sample, sample_time_limit

_START_TIMEOUT = 120.0  # seconds a new child may take to import the batt


def _redirect(log_path: str | None, original: tuple[int, int]) -> None:
    """Point the child's stdout/stderr at ``log_path``, or back at the producer's when None."""
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    else:
        os.dup2(original[0], 1)
        os.dup2(original[1], 2)


BattRef = str | Mapping[str, Any]  # a module name or .py path, or a message's code spec (see batt_tasks.loader)


def _own_modules(ref: BattRef, before: set[str]) -> list[str]:
    """Files of the modules a batt file imported from its own directory tree (for its bundle).

    A module counts when it was new to ``sys.modules`` after the import, its file lies under the batt's
    directory, and its top-level package was not imported before (an installed package that happens to
    sit under that directory, like this project in a checkout, is not shipped).
    """
    if not isinstance(ref, str) or not is_path(ref):
        return []
    root = str(Path(ref).expanduser().resolve().parent) + os.sep
    found = []
    for name in set(sys.modules) - before:
        file = getattr(sys.modules.get(name), "__file__", None)
        if not file or name.partition(".")[0] in before:
            continue
        if os.path.abspath(file).startswith(root) or os.path.realpath(file).startswith(root):
            found.append(file)
    return sorted(found)


def _forget_modules(files: list[str], ref: BattRef) -> None:
    """Drop the modules imported from a batt's directory, so the bundle's copies are imported instead."""
    files_set = set(files)
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) in files_set:
            del sys.modules[name]
    if isinstance(ref, str):
        folder = str(Path(ref).expanduser().resolve().parent)
        sys.path[:] = [p for p in sys.path if p != folder]


def _load(conn: Connection, batt_ref: BattRef) -> bool:
    """Load the batt; tell the parent ``("ready", files of its own modules)`` or ``("load_error", why)``.

    A batt file is imported afresh from its directory (every module it imports from there too, whatever an
    earlier run loaded), so the modules it reports are exactly the ones this version imports.
    """
    from batt_tasks import loader

    if isinstance(batt_ref, str) and is_path(batt_ref):
        loader.forget_path(batt_ref)
    before = set(sys.modules)
    try:
        loader.load_code(batt_ref)
    except BattLoadError as exc:
        conn.send(("load_error", str(exc)))
        return False
    except BaseException as exc:  # noqa: BLE001 - report anything, then stop
        conn.send(("load_error", f"batt {describe(batt_ref)} failed to import: {type(exc).__name__}: {exc}"))
        return False
    conn.send(("ready", _own_modules(batt_ref, before)))
    return True


def _child_main(conn: Connection, batt_ref: BattRef, log_path: str | None, max_result_bytes: int) -> None:
    """The child's loop: load the batt, then score each message received until told to stop.

    A ``("load", batt_ref, log_path, files)`` command makes the child forget the modules ``files`` (those the
    batt file reported, when ``batt_ref`` is its bundle) and load ``batt_ref``; a child kept between runs
    serves the next run's batt that way too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    original = (os.dup(1), os.dup(2))
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    _redirect(log_path, original)
    from batt_tasks.sample import run_message

    if not _load(conn, batt_ref):
        return
    current = batt_ref
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        if isinstance(message, tuple):  # ("load", batt_ref, log_path, files): the bundle, or the next run
            _, new_ref, log_path, files = message
            _forget_modules(files, current)
            current = new_ref
            _redirect(log_path, original)
            if not _load(conn, current):
                return
            continue
        conn.send(("result", run_message(message, log_path, max_result_bytes)))


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Spawn without the caller's ``__main__``: ``spawn`` would run the caller's script again in the child
    (and a search-loop script without an ``if __name__ == "__main__"`` guard would start a run there).
    The child needs nothing from it: its target is :func:`_child_main`, imported by name."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_idle: list[LocalRunner] = []  # at most one runner whose child outlived its run, for the next run to reuse


def shutdown() -> None:
    """Stop the child kept for the next run, if any (a process that scores no more runs may call this)."""
    while _idle:
        _idle.pop().close()


class LocalRunner:
    """Runs samples one at a time in a replaceable spawned child, enforcing each sample's time limit.

    Spawning a child and importing the batt costs far more than a small run: :meth:`acquire` reuses the
    child a previous run released (:meth:`release`), which re-imports only a batt whose file changed.
    """

    def __init__(self, batt_ref: BattRef, log_path: str | Path | None, max_result_bytes: int) -> None:
        self.batt_ref = batt_ref
        self.modules: list[str] = []  # after start(): files the batt imported from its own directory
        self.log_path = None if log_path is None else str(log_path)
        self.max_result_bytes = max_result_bytes
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._reload = False
        self.restarts = 0

    @classmethod
    def acquire(cls, batt_ref: BattRef, log_path: str | Path | None, max_result_bytes: int) -> LocalRunner:
        """A runner for a new run: the idle one (its child kept) when its settings allow, else a new one."""
        while _idle:
            runner = _idle.pop()
            if runner.max_result_bytes == max_result_bytes and runner._alive():
                runner.batt_ref = batt_ref
                runner.log_path = None if log_path is None else str(log_path)
                runner._reload = True
                return runner
            runner.close()
        return cls(batt_ref, log_path, max_result_bytes)

    def release(self, force: bool = False) -> None:
        """The run is over: keep the child for the next run (stop it when ``force`` or when it is gone)."""
        if force or not self._alive():
            self.close(force=force)
            return
        if self not in _idle:
            shutdown()
            _idle.append(self)

    def _alive(self) -> bool:
        return self._conn is not None and self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        """Start the child (or point the kept one at this run) and wait until it has imported the batt;
        raise :class:`BattLoadError` if it cannot."""
        if self._reload and self._alive():
            self._reload = False
            assert self._conn is not None
            try:
                self._conn.send(("load", self.batt_ref, self.log_path, []))
                self._await_ready(self._conn)
                return
            except (EOFError, BrokenPipeError, ConnectionResetError):
                self._reap()
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_child_main,
            args=(child, self.batt_ref, self.log_path, self.max_result_bytes),
            name="batt-local",
            daemon=True,
        )
        # The child inherits SIGINT ignored, so a Ctrl-C at the terminal reaches only the producer,
        # which then stops the child itself (no traceback from a half-started child).
        main = threading.current_thread() is threading.main_thread()  # signal.signal works there only
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            with _main_script_hidden():
                proc.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child.close()
        self._proc, self._conn = proc, parent
        self._await_ready(parent)

    def _await_ready(self, parent: Connection) -> None:
        what = describe(self.batt_ref)
        if not parent.poll(_START_TIMEOUT):
            self.close()
            raise BattLoadError(f"batt {what} took more than {_START_TIMEOUT:.0f}s to import; fix the module")
        try:
            kind, payload = parent.recv()
        except EOFError:
            code = self._reap()
            raise BattLoadError(f"batt {what} killed its process while importing (exit code {code})") from None
        if kind == "load_error":
            self.close()
            raise BattLoadError(payload)
        self.modules = list(payload or [])

    def switch(self, batt_ref: BattRef) -> None:
        """Make the running child forget the batt's own modules and load ``batt_ref`` (its bundle) instead."""
        if not self._alive():
            self._reap()
            self.batt_ref = batt_ref
            self.start()
            return
        assert self._conn is not None
        self._conn.send(("load", batt_ref, self.log_path, self.modules))
        self.batt_ref = batt_ref
        self._await_ready(self._conn)

    def run(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Score one sample message; a timeout or a dead child becomes that sample's result."""
        if self._conn is None:
            self.start()
        assert self._conn is not None
        limit = sample_time_limit(float(message["time_limit"]))  # both calls: each is limited in the child
        scored = message.get("expected") is not None
        args = (message["task_id"], message["kind"], message["index"])
        try:
            self._conn.send(dict(message))
            if self._conn.poll(limit):
                return self._conn.recv()[1]
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._reap()
            self.restarts += 1
            return failed_sample(*args, STATUS_ERROR, f"batt process died (exit code {code})", scored)
        self._reap()
        self.restarts += 1
        return failed_sample(*args, STATUS_TIMEOUT, f"sample time limit of {limit:g}s (both calls) exceeded", scored)

    def _reap(self) -> int | None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        return proc.exitcode

    def close(self, force: bool = False) -> None:
        """Stop the child: politely when it is idle, by SIGKILL when ``force`` or when it does not answer."""
        if not force and self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(1)
            except (OSError, EOFError):
                pass
        self._reap()
