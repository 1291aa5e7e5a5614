"""A search loop's cost: many one-task runs through the Python API in one process.

    python -m bench.api_loop                        # own redis-server + worker (-c 2), 100 runs per mode
    python -m bench.api_loop --runs 300 --modes distributed auto local
    python -m bench.api_loop --cluster env --json   # the cluster BATT_BROKER_URL names (tests/test_api.py)

Each run is ``score_batt(RunOptions(tasks=..., ids=[one task], out=None, quiet=True, mode=...))`` iterated
to the end, the way a search loop calls it, with the tasks loaded once. Per run it records the wall time
and the samples' own time (the ``seconds`` of the task's result: the batt calls, as the worker measured
them); **overhead** is the difference — everything a run costs beyond scoring its samples: the broker
check, the batt's import check, submission, the workers' queue round trips, collection, aggregation.

It also counts the process's threads, open file descriptors (``/proc/self/fd``), TCP connections to the
broker and child processes after one warm-up run and again after the last run: a search loop must not
leak any of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
ZERO_BATT = str(ROOT / "bench" / "zero_batt.py")


def resource_counts(broker_port: int | None) -> dict[str, int]:
    """Threads, file descriptors, TCP connections to the broker's port and child processes of this process."""
    import psutil

    proc = psutil.Process()
    conns = proc.net_connections(kind="tcp")
    return {
        "threads": threading.active_count(),
        "os_threads": proc.num_threads(),
        "fds": len(os.listdir("/proc/self/fd")),
        "connections": sum(1 for c in conns if c.raddr and c.raddr.port == broker_port),
        "children": len(proc.children()),
    }


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "median": round(statistics.median(xs) * 1000, 2),
        "mean": round(statistics.fmean(xs) * 1000, 2),
        "p95": round(xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))] * 1000, 2),
    }


def loop(mode: str, runs: int, task_id: str, batt: str, data: str = "arc-agi-1") -> dict[str, Any]:
    """``runs`` one-task API runs in ``mode`` after one warm-up run: per-run times and resource counts."""
    from producer import RunOptions, load_tasks, score_batt

    tasks = load_tasks(data)
    opts = RunOptions(tasks=tasks, ids=[task_id], batt=batt, out=None, quiet=True, mode=mode)
    port = urlsplit(os.environ.get("BATT_BROKER_URL", "")).port
    with score_batt(opts) as run:  # warm-up: the app, its connections, the kept batt process
        list(run)
    before = resource_counts(port)
    walls: list[float] = []
    overheads: list[float] = []
    modes: set[str] = set()
    failed = 0
    for _ in range(runs):
        started = time.perf_counter()
        with score_batt(opts) as run:
            results = list(run)
        wall = time.perf_counter() - started
        summary = run.summary or {}
        modes.add(run.mode)
        failed += int(len(results) != 1 or summary.get("ok") != summary.get("samples"))
        walls.append(wall)
        overheads.append(wall - sum(r.seconds for r in results))
    after = resource_counts(port)
    return {
        "mode": mode,
        "ran_as": sorted(modes),
        "runs": runs,
        "task": task_id,
        "samples_per_run": summary.get("samples"),
        "failed_runs": failed,
        "wall_ms": _ms(walls),
        "overhead_ms": _ms(overheads),
        "before": before,
        "after": after,
    }


def _own_cluster(concurrency: int) -> tuple[Any, Any]:
    from bench.cluster import BenchRedis, BenchWorker, cluster_env

    redis = BenchRedis().start()
    env = cluster_env(redis.url)
    worker = BenchWorker(env, concurrency, Path(tempfile.mkdtemp(prefix="batt-api-loop-"))).start()
    os.environ.update(BATT_BROKER_URL=env["BATT_BROKER_URL"], BATT_RESULT_BACKEND=env["BATT_RESULT_BACKEND"])
    return redis, worker


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api_loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--modes", nargs="+", default=["distributed", "auto"], choices=["distributed", "auto", "local"])
    p.add_argument("--task", default="007bbfb7", help="the one task of every run (default 007bbfb7: 6 samples)")
    p.add_argument("-b", "--batt", default=ZERO_BATT, help="default: the zero-work batt")
    p.add_argument("--cluster", choices=["own", "env"], default="own", help="own redis-server + worker, or env's")
    p.add_argument("-c", "--concurrency", type=int, default=2, help="pool processes of the own worker")
    p.add_argument("--json", action="store_true", help="one JSON line per mode instead of a table")
    args = p.parse_args(argv)
    cluster = _own_cluster(args.concurrency) if args.cluster == "own" else None
    try:
        for mode in args.modes:
            report = loop(mode, args.runs, args.task, args.batt)
            if args.json:
                print(json.dumps(report), flush=True)
                continue
            w, o = report["wall_ms"], report["overhead_ms"]
            print(
                f"{mode:>11} ({'/'.join(report['ran_as'])}): {report['runs']} runs of {report['samples_per_run']} "
                f"samples, wall median {w['median']} ms (p95 {w['p95']}), overhead beyond the samples median "
                f"{o['median']} ms, mean {o['mean']} ms (p95 {o['p95']}); failed runs {report['failed_runs']}; "
                f"before {report['before']} after {report['after']}",
                flush=True,
            )
    finally:
        from producer.local import shutdown

        shutdown()
        if cluster is not None:
            redis, worker = cluster
            worker.stop()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
