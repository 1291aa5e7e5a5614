"""Run plans in the result backend, and what ``--resume`` and ``--status`` need to know about a run.

When a distributed run is submitted, its plan — options, task ids, every task's grids, and the Celery
task id of each sample — is stored in the result backend (expiring with the results). A producer that
died can then be replaced: ``--resume RUN_ID`` rebuilds the messages from the plan, collects what
finished, keeps waiting for what is still queued or held by a worker, and resubmits only samples that
are neither finished nor pending anywhere (under a fresh task id, since workers remember revoked ids).

Where a sample is pending is read from the broker itself (:mod:`producer.brokers`): on Redis, the queue's
list and kombu's ``unacked`` hash place every sample; RabbitMQ shows no message without taking it, so there
an unfinished sample whose submission the broker confirmed is "queued or running" (it cannot be lost), and
only an unconfirmed one is resubmitted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from celery import Celery

from batt_tasks.config import settings
from batt_tasks.grids import to_grid
from batt_tasks.queues import QUEUE
from producer.brokers import broker_view
from producer.data import Task
from producer.errors import UsageError
from producer.plan import sample_messages

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
    """Where each sample of a run is (``unplaced``: queued or running, the broker cannot say which)."""

    finished: list[str]
    running: list[str]
    pending: list[str]
    lost: list[str]
    cancelled: list[str] = field(default_factory=list)  # revoked or skipped by a stop (Ctrl-C, --max-errors)
    unplaced: list[str] = field(default_factory=list)
    depth: str = ""  # the broker's counts of the sample queue, when it gives only counts

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items() if isinstance(v, list)}

    def waiting(self) -> set[str]:
        """Samples the broker still has (queued, running, or one of the two)."""
        return set(self.running) | set(self.pending) | set(self.unplaced)

    def line(self, plan: Plan) -> str:
        """``--status``'s one line."""
        c = self.counts()
        total = sum(c.values())
        where = (
            f"{c['running']} running, {c['pending']} queued"
            if not self.depth
            else f"{c['unplaced']} queued or running (RabbitMQ cannot say which per sample)"
        )
        tail = f"; {self.depth}" if self.depth else ""
        return (
            f"run {plan.run_id}: {c['finished']}/{total} samples finished, {where}, {c['cancelled']} cancelled, "
            f"{c['lost']} lost (cancelled and lost ones are submitted again by --resume); "
            f"{len(plan.order)} tasks, results in {Path(plan.out) / plan.run_id}{tail}"
        )


def run_status(app: Celery, plan: Plan, broker_url: str, stopped: bool = False) -> RunStatus:
    """Classify every sample of the plan as finished, running (held by a worker: running or reserved),
    pending (queued), cancelled (revoked, or queued in a run that was ``stopped``: workers skip it), unplaced
    (queued or running, on a broker that cannot say which) or lost (none of these). --resume submits cancelled
    and lost samples again."""
    view = broker_view(replace(settings(), broker_url=broker_url))
    states = backend_states(app, plan.task_ids.values())
    placement = view.placement()
    submitted = view.submitted(app, plan.run_id) if placement is None else None
    status = RunStatus([], [], [], [])
    if placement is None:
        status.depth = view.depth().describe(QUEUE)
    for name, tid in plan.task_ids.items():
        state = states.get(tid, "PENDING")
        if state in FINISHED_STATES:
            status.finished.append(name)
        elif state == "REVOKED":
            status.cancelled.append(name)
        elif placement is None:
            if submitted is None or tid not in submitted:
                status.lost.append(name)
            else:
                (status.cancelled if stopped else status.unplaced).append(name)
        elif tid in placement.held:
            status.running.append(name)
        elif tid in placement.queued:
            (status.cancelled if stopped else status.pending).append(name)
        else:
            status.lost.append(name)
    return status


def resubmission_id(run_id: str, name: str) -> str:
    """A fresh Celery task id for a sample submitted again."""
    return f"{run_id}.{name}.r{time.time_ns() % 10**12}"
