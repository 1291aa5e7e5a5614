"""A result stored in the backend but never announced on pub/sub is still collected (MissedResultWatch).

Celery's Redis result consumer re-reads stored results after a reconnect and only then subscribes again, so a
result stored in between is announced to nobody (fault 4b hit it under load). Here the test plays the worker:
it takes each queued message from the real broker, scores it with the pure core and stores the result the way
Celery's backend does, but without the PUBLISH. The real producer must still finish.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_proc import wait_for
from workers import ROOT, batt_env

from batt_tasks.sample import run_message

pytestmark = pytest.mark.integration

TASK = "007bbfb7"  # 5 train + 1 test samples


def _queued(broker: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for raw in broker.lrange("batt", 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append((envelope["headers"]["id"], args[0]))
    return out


def test_results_stored_without_announcement_are_collected(shared_redis: Any, tmp_path: Path) -> None:
    db = 10
    env = batt_env(shared_redis.url, db)
    broker = redis.Redis.from_url(f"{shared_redis.url}/{db}")
    backend = redis.Redis.from_url(f"{shared_redis.url}/{db + 1}")
    args = ["-m", "producer.cli", "-i", TASK, "--require-broker", "--no-worker-warn", "600", "-q"]
    proc = subprocess.Popen(
        [sys.executable, *args, "--out", str(tmp_path)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: broker.llen("batt") == 6, 60, what="the producer to queue the task's 6 samples")
        for task_id, message in _queued(broker):
            meta = {
                "status": "SUCCESS",
                "result": run_message(message, None, 1_000_000),
                "traceback": None,
                "children": [],
                "date_done": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "task_id": task_id,
            }
            backend.set(f"celery-task-meta-{task_id}", json.dumps(meta))  # stored, never published
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    lines = [json.loads(x) for x in next(tmp_path.glob("*/results.jsonl")).read_text().splitlines()]
    assert [(line["task_id"], line["ok"]) for line in lines] == [(TASK, 6)]
