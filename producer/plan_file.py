"""A run's plan in its own run directory (``plan.json``): ``--resume`` and ``--status`` without the broker.

Every run writes the plan (:class:`producer.resume.Plan`: options, task ids, every task's grids) into its
run directory before any sample runs. A local run has no other record of it; a distributed run also
stores it in the result backend, which ``--resume``/``--status`` read first. From the file a run is
continued locally, or on a cluster if one is available now; tasks already in ``results.jsonl`` are not
run again.
"""

from __future__ import annotations

from pathlib import Path

from producer.errors import UsageError
from producer.results import read_results, write_text_atomic
from producer.resume import Plan

PLAN_FILE = "plan.json"


def save_plan_file(run_dir: Path, plan: Plan) -> None:
    """Write the plan into the run directory (atomically)."""
    write_text_atomic(run_dir / PLAN_FILE, plan.to_json())


def find_plan_file(out: str | Path, run_id: str) -> Plan | None:
    """The plan of ``run_id`` under ``out`` (``out/run_id/plan.json``), or None when there is none."""
    path = Path(out).expanduser() / run_id / PLAN_FILE
    if not path.is_file():
        return None
    try:
        return Plan.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"--resume/--status {run_id}: {path} is unreadable ({exc}); the run cannot be continued"
        ) from None


def local_status(plan: Plan, run_dir: Path) -> str:
    """The one-line ``--status`` of a run known from its plan file: what ``results.jsonl`` holds."""
    lines = {line["task_id"]: line for line in read_results(run_dir / "results.jsonl")}
    done = [lines[t] for t in plan.order if t in lines]
    samples = sum(len(t.train) + len(t.test) for t in plan.tasks.values())
    finished = sum(line["samples"]["train"] + line["samples"]["test"] for line in done)
    failed = sum(line["errors"] + line["timeouts"] for line in done)
    left = (
        "complete"
        if len(done) == len(plan.order)
        else f"not running here; continue with: batt-submit --resume {plan.run_id} --out {run_dir.parent}"
    )
    return (
        f"run {plan.run_id} (from {run_dir / PLAN_FILE}): {len(done)}/{len(plan.order)} tasks finished, "
        f"{finished}/{samples} samples ({failed} failed), results in {run_dir}; {left}"
    )
