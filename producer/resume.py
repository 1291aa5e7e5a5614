"""Run plans in the result backend, and what ``--resume`` and ``--status`` need to know about a run.

When a distributed run is submitted, its plan — options, task ids, every task's grids, and the Celery
task id of each sample — is stored in the result backend (expiring with the results). A producer that
died can then be replaced: ``--resume RUN_ID`` rebuilds the messages from the plan, collects what
finished, keeps waiting for what is still queued or held by a worker, and resubmits only samples that
are neither finished nor pending anywhere (under a fresh task id, since workers remember revoked ids).

Where a sample is pending is read from the Redis broker itself: the queue's list and kombu's
``unacked`` hash (messages delivered to a worker and not yet acknowledged, including those of a
worker that died, which Redis redelivers after the visibility timeout).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from batt_tasks.grids import to_grid
from producer.data import Task
from producer.errors import UsageError
from producer.plan import sample_messages

QUEUE = "batt"
UNACKED_KEY = "unacked"  # kombu's Redis transport default
FINISHED_STATES = frozenset({"SUCCESS", "FAILURE"})


def plan_key(run_id: str) -> str:
    """The backend key of a run's plan."""
    return f"batt-run-plan-{run_id}"


def sample_name(message: Mapping[str, Any]) -> str:
    """``<task_id>.<kind>.<index>``: a sample's name inside a run."""
    return f"{message['task_id']}.{message['kind']}.{message['index']}"


@dataclass
class Plan:
    """A run's plan: enough to rebuild every sample message and find every sample's result."""

    run_id: str
    options: dict[str, Any]
    order: list[str]
    tasks: dict[str, Task]
    out: str
    task_ids: dict[str, str]  # sample name → Celery task id of its latest submission
    generation: int = 0  # bumped by each --resume; a cancelled generation's samples are skipped by workers

    def messages(self) -> list[dict[str, Any]]:
        return sample_messages(
            self.run_id, self.tasks, self.order, self.options["batt"], self.options["timeout"], self.generation
        )

    def to_json(self) -> str:
        tasks = {
            tid: {"train": [[i, o] for i, o in t.train], "test": [[i, o] for i, o in t.test]}
            for tid, t in self.tasks.items()
        }
        return json.dumps(
            {
                "run_id": self.run_id,
                "options": self.options,
                "order": self.order,
                "tasks": tasks,
                "out": self.out,
                "task_ids": self.task_ids,
                "generation": self.generation,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Plan:
        data = json.loads(raw)
        tasks = {
            tid: Task(
                tid,
                tuple((to_grid(i), to_grid(o)) for i, o in t["train"]),
                tuple((to_grid(i), None if o is None else to_grid(o)) for i, o in t["test"]),
            )
            for tid, t in data["tasks"].items()
        }
        return cls(
            data["run_id"], data["options"], data["order"], tasks, data["out"], data["task_ids"], data["generation"]
        )


def save_plan(app: Celery, plan: Plan) -> None:
    """Store (or update) the plan; it expires with the results (``BATT_RESULT_EXPIRES``)."""
    app.backend.set(plan_key(plan.run_id), plan.to_json())


def load_plan(app: Celery, run_id: str) -> Plan:
    """The stored plan of ``run_id``, or a :class:`UsageError` when there is none."""
    raw = app.backend.get(plan_key(run_id))
    if raw is None:
        raise UsageError(
            f"--resume/--status {run_id}: no plan for this run in the result backend (not a distributed run, "
            "a different BATT_RESULT_BACKEND, or expired after BATT_RESULT_EXPIRES); check the run id"
        )
    return Plan.from_json(raw)


def _message_ids(raws: Iterable[bytes | str], nested: bool) -> set[str]:
    ids: set[str] = set()
    for raw in raws:
        try:
            payload = json.loads(raw)
            envelope = payload[0] if nested else payload
            envelope = json.loads(envelope) if isinstance(envelope, str) else envelope
            ids.add(envelope["headers"]["id"])
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return ids


def pending_in_broker(broker_url: str) -> tuple[set[str], set[str]]:
    """Task ids of messages waiting in the queue, and of those delivered to a worker and not yet acknowledged."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        # One transaction: a message moving from the queue to unacked between two reads would look lost.
        with client.pipeline(transaction=True) as pipe:
            queued, unacked = pipe.lrange(QUEUE, 0, -1).hvals(UNACKED_KEY).execute()
    finally:
        client.close()
    return _message_ids(queued, nested=False), _message_ids(unacked, nested=True)


def backend_metas(app: Celery, task_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Each task id's result meta in the backend (None when it has none, or none that decodes), in one MGET."""
    ids = list(task_ids)
    backend = app.backend
    raws = backend.mget([backend.get_key_for_task(i) for i in ids]) if ids else []
    metas: dict[str, dict[str, Any] | None] = {}
    for i, raw in zip(ids, raws, strict=True):
        try:
            metas[i] = backend.decode_result(raw) if raw is not None else None
        except Exception:  # noqa: BLE001 - an undecodable value counts as no result
            metas[i] = None
    return metas


def backend_states(app: Celery, task_ids: Iterable[str]) -> dict[str, str]:
    """The state each task id has in the result backend (PENDING when it has none)."""
    return {i: (meta or {}).get("status") or "PENDING" for i, meta in backend_metas(app, task_ids).items()}


@dataclass
class RunStatus:
    """Where each sample of a run is."""

    finished: list[str]
    running: list[str]
    pending: list[str]
    lost: list[str]
    cancelled: list[str] = field(default_factory=list)  # revoked or skipped by a stop (Ctrl-C, --max-errors)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items()}


def run_status(app: Celery, plan: Plan, broker_url: str, stopped: bool = False) -> RunStatus:
    """Classify every sample of the plan as finished, running (held by a worker: running or reserved),
    pending (queued), cancelled (revoked, or queued in a run that was ``stopped``: workers skip it) or lost
    (none of these). --resume submits cancelled and lost samples again."""
    states = backend_states(app, plan.task_ids.values())
    queued, held = pending_in_broker(broker_url)
    status = RunStatus([], [], [], [])
    for name, tid in plan.task_ids.items():
        state = states.get(tid, "PENDING")
        if state in FINISHED_STATES:
            status.finished.append(name)
        elif state == "REVOKED":
            status.cancelled.append(name)
        elif tid in held:
            status.running.append(name)
        elif tid in queued:
            (status.cancelled if stopped else status.pending).append(name)
        else:
            status.lost.append(name)
    return status


def resubmission_id(run_id: str, name: str) -> str:
    """A fresh Celery task id for a sample submitted again."""
    return f"{run_id}.{name}.r{time.time_ns() % 10**12}"
