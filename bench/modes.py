"""The benchmark's in-process modes, each run as its own process by :mod:`bench.run`.

    python -m bench.modes {inproc,replaced,pool} -b BATT --ids-file IDS --out RESULT.json [--procs N]
        [--start-method fork|spawn]

Every mode scores the same messages (:func:`producer.plan.sample_messages`) with the same pure core
(:func:`batt_tasks.sample.run_message`) and aggregates them with :class:`producer.collect.Collector`
(:func:`batt_tasks.scoring.aggregate_task`), so its task lines can be compared with batt-submit's.

- ``inproc``: a plain loop in this process. No pipes, no processes: the reference cost of the work.
- ``replaced``: the design batt-queue replaces: for each task in turn, a fresh
  ``ProcessPoolExecutor(3)`` over that task's samples only, shut down before the next task.
- ``pool``: one persistent ``ProcessPoolExecutor(procs)`` over all samples of all tasks at once, one
  call per sample: the ideal on one machine.

Pools use the ``fork`` start method by default (Python 3.11's default on Linux, and the cheapest),
after this process has imported the batt, so pool processes never import it: the baselines get their
best case. ``replaced --start-method spawn`` starts every pool process as a fresh interpreter that
imports the batt itself, which is what the replaced tool got from loky's ``ProcessPoolExecutor``
(fork + exec) whenever loky was installed.
The result file holds ``work_seconds`` (first sample submitted to last task aggregated, the span of
batt-submit's ``wall_seconds``; it leaves out start-up: data, plan, batt import and, for ``pool``,
starting and warming the pool) and the task lines.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from batt_tasks.config import settings
from batt_tasks.loader import load_batt, resolve
from batt_tasks.sample import run_message
from producer.collect import Collector
from producer.data import load_tasks
from producer.plan import sample_counts, sample_messages

REPLACED_POOL_SIZE = 3  # the replaced design's pool size per task
MODES = ("inproc", "replaced", "pool")

_max_result_bytes = 1_000_000


def _init(batt_ref: str, max_result_bytes: int) -> None:
    """Pool process initializer: the batt is loaded (a cache hit after fork) before the first sample."""
    global _max_result_bytes
    _max_result_bytes = max_result_bytes
    load_batt(batt_ref)


def score(message: Mapping[str, Any]) -> dict[str, Any]:
    """Score one sample message with the pure core (what a Celery sample task does, minus Celery)."""
    return run_message(message, None, _max_result_bytes)


def _noop(n: int) -> int:
    return n


def _lines(collector: Collector, results: Sequence[Mapping[str, Any]] | Any) -> list[dict[str, Any]]:
    lines = []
    for result in results:
        line = collector.add(result)
        if line is not None:
            lines.append(line)
    return lines


def run_inproc(messages: list[dict[str, Any]], max_result_bytes: int) -> list[dict[str, Any]]:
    """Every sample in a plain loop in this process."""
    collector = Collector(sample_counts(messages))
    return _lines(collector, (run_message(m, None, max_result_bytes) for m in messages))


def run_replaced(
    messages: list[dict[str, Any]], batt: str, max_result_bytes: int, start_method: str = "fork"
) -> list[dict[str, Any]]:
    """The replaced design: per task, a fresh pool of 3 over that task's samples."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_task.setdefault(m["task_id"], []).append(m)
    collector = Collector(sample_counts(messages))
    ctx = multiprocessing.get_context(start_method)
    lines: list[dict[str, Any]] = []
    for task_messages in by_task.values():
        with ProcessPoolExecutor(
            REPLACED_POOL_SIZE, mp_context=ctx, initializer=_init, initargs=(batt, max_result_bytes)
        ) as pool:
            lines += _lines(collector, pool.map(score, task_messages))
    return lines


def start_pool(procs: int, batt: str, max_result_bytes: int) -> ProcessPoolExecutor:
    """A persistent pool of ``procs`` forked processes, each with the batt loaded, warmed up."""
    pool = ProcessPoolExecutor(
        procs, mp_context=multiprocessing.get_context("fork"), initializer=_init, initargs=(batt, max_result_bytes)
    )
    list(pool.map(_noop, range(4 * procs)))
    return pool


def run_pool(pool: ProcessPoolExecutor, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All samples of all tasks submitted at once, one call per sample, collected as they complete."""
    collector = Collector(sample_counts(messages))
    futures = [pool.submit(score, m) for m in messages]
    return _lines(collector, (f.result() for f in as_completed(futures)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode once and write its result file."""
    p = argparse.ArgumentParser(prog="python -m bench.modes", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument("-b", "--batt", required=True)
    p.add_argument("--ids-file", required=True, help="JSON list of task ids")
    p.add_argument("--data", default="arc-agi-1")
    p.add_argument("--split", default="train")
    p.add_argument("--procs", type=int, default=2, help="pool processes of the pool mode")
    p.add_argument("--start-method", choices=("fork", "spawn"), default="fork", help="of the replaced mode's pools")
    p.add_argument("--time-limit", type=float, default=20.0, help="carried in messages (not enforced here)")
    p.add_argument("--out", required=True, help="result JSON file")
    args = p.parse_args(argv)

    batt = resolve(args.batt)
    max_result_bytes = settings().max_result_bytes
    ids = json.loads(Path(args.ids_file).read_text())
    tasks = load_tasks(args.data, args.split)
    messages = sample_messages("bench", tasks, ids, batt, args.time_limit)
    _init(batt, max_result_bytes)
    pool = start_pool(args.procs, batt, max_result_bytes) if args.mode == "pool" else None
    ready = time.perf_counter()
    if args.mode == "inproc":
        lines = run_inproc(messages, max_result_bytes)
    elif args.mode == "replaced":
        lines = run_replaced(messages, batt, max_result_bytes, args.start_method)
    else:
        assert pool is not None
        lines = run_pool(pool, messages)
    work = time.perf_counter() - ready
    if pool is not None:
        pool.shutdown()
    Path(args.out).write_text(
        json.dumps(
            {
                "mode": args.mode,
                "work_seconds": round(work, 4),
                "samples": len(messages),
                "lines": lines,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
