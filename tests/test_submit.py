"""producer.distributed.submit: pipelined publishing to a real Redis, and its fallback when a round trip fails.

The producer runs as its own process (its Celery app reads the broker from the environment), with no
worker, so the test reads exactly what reached the broker's queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import redis
from workers import ROOT, batt_env

pytestmark = pytest.mark.integration

PRODUCER = """
import json, sys
from kombu.exceptions import BatchPublishError
from kombu.transport import redis as kombu_redis
from producer.data import load_tasks
from producer.distributed import SUBMIT_CHUNK, sample_task_id, submit
from producer.plan import sample_messages

fail_first_flush = sys.argv[1] == "fail"
if fail_first_flush:  # the first pipelined round trip fails before Redis ran any of it
    flush = kombu_redis.PublishBatch.flush
    def failing_flush(self, _state={"failed": False}):
        if not _state["failed"]:
            _state["failed"] = True
            self.pipeline.reset()  # nothing of it ran
            self._buffered = 0
            raise BatchPublishError("injected: Redis publish batch failed; delivery is uncertain")
        return flush(self)
    kombu_redis.PublishBatch.flush = failing_flush

tasks = load_tasks("arc-agi-1", "train")
messages = [m for m in sample_messages("run-x", tasks, sorted(tasks)[:80], "batt_tasks.battery", 10.0)]
assert len(messages) > SUBMIT_CHUNK, len(messages)
jobs = {sample_task_id(m): m for m in messages}
sent = submit(jobs, 10.0)
print(json.dumps({"ids": sorted(jobs), "returned": sorted(r.id for r in sent)}))
"""


def _submit(redis_url: str, db: int, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER, mode],
        env=batt_env(redis_url, db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _queued_ids(redis_url: str, db: int) -> list[str]:
    broker = redis.Redis.from_url(f"{redis_url}/{db}")
    return sorted(json.loads(raw)["headers"]["id"] for raw in broker.lrange("batt", 0, -1))


@pytest.mark.parametrize(("mode", "db"), [("batched", 4), ("fail", 6)])
def test_every_sample_reaches_the_queue_once(shared_redis: Any, mode: str, db: int) -> None:
    out = _submit(shared_redis.url, db, mode)
    assert out["returned"] == out["ids"]
    # batched: every chunk in one round trip; fail: the failed chunk published again one by one
    assert _queued_ids(shared_redis.url, db) == out["ids"]
