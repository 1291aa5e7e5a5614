"""The queue path's per-sample CPU fixes (issue 14, "Queue overhead"): redis-py's pub/sub push handler logs
lazily, pool processes freeze the heap they inherit, and the producer freezes the pre-run heap while it collects.
(The packed sample-result form is tested with the scoring core, in tests/test_scoring.py.)"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
from typing import Any

import pytest

import batt_tasks.celery  # noqa: F401 - installs the fixes, as every producer and worker does
from batt_tasks import pubsub_fix
from producer.run import heap_frozen


class Loud:
    """A pub/sub message whose text form must not be built unless it is logged."""

    def __init__(self) -> None:
        self.rendered = 0

    def __repr__(self) -> str:
        self.rendered += 1
        return "<loud>"

    __str__ = __repr__


@pytest.mark.parametrize("parser_path", ["redis._parsers.resp3._RESP3Parser", "redis._parsers.hiredis._HiredisParser"])
def test_pubsub_push_handler_builds_no_string_unless_debug_is_on(
    parser_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    module, name = parser_path.rsplit(".", 1)
    parser = getattr(__import__(module, fromlist=[name]), name)
    pubsub_fix.install()  # idempotent
    message = Loud()
    handler = parser.handle_pubsub_push_response
    assert handler(object.__new__(parser), message) is message
    assert message.rendered == 0  # redis-py 8.1 built "Push response: " + str(message) at every log level
    with caplog.at_level(logging.DEBUG, logger="push_response"):
        handler(object.__new__(parser), message)
    assert "Push response: <loud>" in caplog.text and message.rendered >= 1


def test_pool_processes_freeze_what_they_inherit() -> None:
    """Connected to worker_process_init: a forked pool process leaves the worker's heap out of its collections."""
    from celery.signals import worker_process_init

    from batt_tasks.tasks import freeze_inherited_heap

    assert any(r() is freeze_inherited_heap for _, r in worker_process_init.receivers)
    code = (
        "import gc; from celery.signals import worker_process_init; import batt_tasks.tasks; "
        "assert gc.get_freeze_count() == 0; worker_process_init.send(sender=None); "
        "print(gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) > 10_000


def test_the_producer_freezes_the_heap_only_while_runs_collect() -> None:
    assert gc.get_freeze_count() == 0
    junk: list[Any] = [[n] for n in range(1000)]
    with heap_frozen():
        frozen = gc.get_freeze_count()
        assert frozen >= len(junk)
        with heap_frozen():  # a second run in the same process: nothing more, nothing undone
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0  # the last run out puts everything back


def test_a_freeze_that_is_not_ours_is_left_alone() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with heap_frozen():
            assert gc.get_freeze_count() == before
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
