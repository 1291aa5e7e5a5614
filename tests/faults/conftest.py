"""Fixtures of the fault suite: workers that are always cleaned up, and the outcome row every test records."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from workers import Worker

from faults.report import SCENARIOS, record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the ``outcome`` fixture knows whether the test passed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


class Outcome(dict[str, Any]):
    """One row of the fault table; the test fills it in, the fixture records it with the test's result."""


@pytest.fixture
def outcome(request: pytest.FixtureRequest) -> Iterator[Outcome]:
    """The outcome row of this test: set ``scenario`` (and the rest); it is recorded at teardown, pass or fail."""
    row = Outcome()
    started = time.monotonic()
    yield row
    if "scenario" not in row:
        return
    rep = getattr(request.node, "rep_call", None) or getattr(request.node, "rep_setup", None)
    if rep is None:
        status = "not run"
    elif rep.skipped:
        status = "skipped"
    elif rep.passed:
        status = "passed"
    else:
        status = "FAILED"
    row.setdefault("fault", SCENARIOS.get(str(row["scenario"]), ""))
    if status == "FAILED" and rep is not None:
        crash = getattr(rep.longrepr, "reprcrash", None)
        reason = " ".join(str(getattr(crash, "message", rep.longrepr)).split())[:300]
        row["happened"] = f"FAILED: {reason}" + (f" ({row['happened']})" if row.get("happened") else "")
    row.update(
        status=status, duration_s=round(time.monotonic() - started, 1), when=time.time(), test=request.node.nodeid
    )
    record(row)


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start real workers; every one is stopped (warm, then SIGKILL of its tree) when the test ends.

    Their logs are moved into the test's ``tmp_path`` (pytest keeps the last runs' directories).
    """
    started: list[Worker] = []

    def spawn(env: dict[str, str], concurrency: int = 2, name: str = "w", extra: list[str] | None = None) -> Worker:
        w = Worker(env, concurrency=concurrency, extra=extra, name=name)
        started.append(w)
        return w.start()

    yield spawn
    for w in started:
        w.stop(timeout=15)
        with contextlib.suppress(OSError):
            shutil.move(w.log, tmp_path / f"worker-{w.node.split('@')[0]}.log")
