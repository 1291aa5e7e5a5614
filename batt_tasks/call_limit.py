"""The time limit of one batt call (``-t``), enforced inside the process that runs the batt.

A sample makes up to two batt calls (solve, then diff); each gets the whole limit, as in the scorer
batt-queue replaces. :func:`call_limit` arms a one-shot ``ITIMER_REAL`` timer whose ``SIGALRM`` raises
:class:`CallTimeout` in the main thread: Python code is interrupted at once, and so are blocking calls
that return to the interpreter on a signal (``time.sleep``, I/O). A call stuck in C code that never
returns is left to the whole-sample limit (local mode kills the process; the worker's hard limit).
Celery's prefork pool processes and local mode's child run batts in their main thread and use no
``SIGALRM`` of their own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any


class CallTimeout(BaseException):
    """A batt call ran past its time limit. A ``BaseException``, like ``KeyboardInterrupt``: a batt's
    ``except Exception`` around each candidate (as generated batts do) does not swallow it."""


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise CallTimeout(f"time limit of {seconds:g}s exceeded")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_limit(seconds: float | None) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of contexts limiting one batt call to ``seconds`` (none when None, or off the main thread)."""

    def limit() -> AbstractContextManager[Any]:
        if seconds is None or threading.current_thread() is not threading.main_thread():
            return nullcontext()
        return _alarm(seconds)

    return limit
