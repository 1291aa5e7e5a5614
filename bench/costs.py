"""Where the time of one sample goes on the queue path: CPU per process, idle gaps, Celery's own floor.

    python -m bench.costs                        # all variants, payloads noop, zero and main, -c 1
    python -m bench.costs --variants configured,events --payloads zero --rounds 5

For each **variant** of the Celery settings (the app of :mod:`batt_tasks.celery` with overrides, see
:mod:`bench.costs_app`) a private redis-server and a real prefork worker are started; a producer
process publishes every message at once (the options of :func:`producer.distributed.submit`) and
collects the results with ``ResultSet.iter_native`` as batt-submit does. Each **payload** runs once
untimed, then ``--rounds`` times:

- ``noop``: the Celery task ``bench.noop`` (returns its 10-byte argument): Celery's own per-task floor;
- ``zero``: ``batt.score_sample`` with the zero-work batt on ``--zero-tasks`` tasks;
- ``main``: ``batt.score_sample`` with the built-in battery on ``--tasks`` tasks.

Reported per sample (medians over rounds): wall time; CPU of the producer, the worker's main
process, its pool processes and redis-server; and, from the worker's log, the mean time a pool
process spent inside the task ("succeeded in": the trace, with the result stored) and the mean time
it sat idle between two tasks (waiting for the main process to hand it the next one). The untimed
``interval`` check shows the fixed wait ``ResultSet.iter_native`` adds to every collection.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.cluster import ROOT, BenchRedis, BenchWorker, cluster_env

_EVENTS_ON = {"worker_send_task_events": True, "task_send_sent_event": True}
VARIANTS: dict[str, dict[str, Any]] = {
    # as shipped: task events off (BATT_TASK_EVENTS unset), fanout_patterns on
    "configured": {},
    # task events on, as while Flower runs (it turns them on) or with BATT_TASK_EVENTS=1
    "events": _EVENTS_ON,
    # events on and kombu's fanout_patterns off: every worker receives and decodes every task event
    "events-nopatterns": {**_EVENTS_ON, "broker_transport_options": {"fanout_patterns": False}},
    "prefetch2": {"worker_prefetch_multiplier": 2},
}
PAYLOADS = ("noop", "zero", "main")
ZERO_BATT = str(ROOT / "bench" / "zero_batt.py")
_LOG_LINE = re.compile(r"\[(\S+ \S+): \w+/(ForkPoolWorker-\d+)\] Task \S+\[(bench-[^\]]+)\] succeeded in ([0-9.e-]+)s")


# -- the producer process --------------------------------------------------------------------------


def _jobs(payload: str, tag: str, ids: list[str]) -> list[tuple[str, Any]]:
    """(Celery task id, argument) of every message of one round."""
    if payload == "noop":
        return [(f"{tag}-{n}", "x" * 10) for n in range(len(ids) * 4)]
    from batt_tasks.config import settings
    from batt_tasks.signing import resolve_keys
    from producer.bundling import sign_messages
    from producer.data import load_tasks
    from producer.plan import sample_messages

    batt = ZERO_BATT if payload == "zero" else "batt_tasks.battery"
    messages = sample_messages(tag, load_tasks("arc-agi-1", "train"), ids, batt, 20.0)
    sign_messages(messages, batt, resolve_keys(settings()))  # workers score signed messages only
    return [(f"{tag}-{n}", m) for n, m in enumerate(messages)]


def _produce(payload: str, ids: list[str], rounds: int, interval: float) -> None:
    """Producer side: for each round, wait for "go" on stdin, publish and collect, print the timings."""
    from celery.result import ResultSet

    from batt_tasks.tasks import score_sample
    from bench.costs_app import app, noop
    from producer.distributed import hard_limit

    task = noop if payload == "noop" else score_sample
    for r in range(rounds + 1):
        jobs = _jobs(payload, f"bench-{payload}-{r}-{os.getpid()}", ids)
        print(json.dumps({"ready": r}), flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        t0, c0 = time.perf_counter(), time.process_time()
        with app.producer_or_acquire() as producer, producer.batch(max_size=4 * len(jobs)):  # as submit() does
            results = [
                task.apply_async(
                    args=[arg], task_id=tid, soft_time_limit=20.0, time_limit=hard_limit(20.0), producer=producer
                )
                for tid, arg in jobs
            ]
        collected = sum(1 for _ in ResultSet(results, app=app).iter_native(no_ack=True, interval=interval))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        for res in results:
            with contextlib.suppress(Exception):
                res.backend.remove_pending_result(res)
        print(json.dumps({"round": r, "samples": collected, "wall": wall, "cpu": cpu}), flush=True)


# -- the measuring side ----------------------------------------------------------------------------


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.NoSuchProcess):
        t = proc.cpu_times()
        return t.user + t.system
    return 0.0


def _split(worker: BenchWorker, redis: BenchRedis) -> dict[str, float]:
    """CPU seconds so far of the worker's main process, its pool processes and redis-server."""
    assert worker.proc is not None and redis.proc is not None
    main = psutil.Process(worker.proc.pid)
    return {
        "main": _cpu(main),
        "pool": sum(_cpu(c) for c in main.children(recursive=True)),
        "redis": _cpu(psutil.Process(redis.proc.pid)),
    }


def _log_stats(text: str, prefix: str) -> tuple[float | None, float | None]:
    """Mean time inside a task and mean idle gap before a task, per pool process, from the log.

    Means, not medians, so that with one pool process wall ≈ inside + gap, and CPU per sample compares.
    """
    per: dict[str, list[tuple[float, float]]] = {}
    for m in _LOG_LINE.finditer(text):
        if not m.group(3).startswith(prefix):
            continue
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        per.setdefault(m.group(2), []).append((at, float(m.group(4))))
    inside = [run for events in per.values() for _, run in events]
    gaps = [t1 - r1 - t0 for events in per.values() for (t0, _), (t1, r1) in zip(events, events[1:], strict=False)]
    return (
        statistics.fmean(inside) * 1000 if inside else None,
        statistics.fmean(gaps) * 1000 if gaps else None,
    )


def measure(
    variant: str, payloads: Sequence[str], ids: dict[str, list[str]], args: argparse.Namespace, log_dir: Path
) -> list[dict[str, Any]]:
    """One cluster with ``variant``'s settings; every payload through it."""
    overrides = VARIANTS[variant]
    redis = BenchRedis().start()
    env = cluster_env(redis.url)
    env["BENCH_CELERY_CONF"] = json.dumps(overrides)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    worker = BenchWorker(env, args.concurrency, log_dir, "info")
    worker.args[worker.args.index("batt_tasks")] = "bench.costs_app"
    worker.log = log_dir / f"worker-{variant}.log"
    rows = []
    try:
        worker.start()
        for payload in payloads:
            cmd = [sys.executable, "-m", "bench.costs", "--produce", payload, "--rounds", str(args.rounds)]
            cmd += ["--ids", json.dumps(ids[payload]), "--interval", "0"]
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert proc.stdin is not None and proc.stdout is not None
            rounds = []
            for line in proc.stdout:
                msg = json.loads(line)
                if "ready" in msg:
                    before = _split(worker, redis)
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    continue
                after = _split(worker, redis)
                if msg["round"] > 0:
                    rounds.append({**msg, **{k: after[k] - before[k] for k in after}})
            if proc.wait() != 0 or not rounds:
                raise RuntimeError(f"producer for {variant}/{payload} failed (exit {proc.returncode})")
            n = rounds[0]["samples"]
            inside, gap = _log_stats(worker.text(), f"bench-{payload}-")

            def med(key: str, rounds: list[dict[str, Any]] = rounds, n: int = n) -> float:
                return statistics.median(r[key] for r in rounds) * 1000 / n

            row = {
                "variant": variant,
                "payload": payload,
                "samples": n,
                "wall_ms": med("wall"),
                "producer_ms": med("cpu"),
                "main_ms": med("main"),
                "pool_ms": med("pool"),
                "redis_ms": med("redis"),
                "inside_ms": inside,
                "gap_ms": gap,
                "load": os.getloadavg()[0],
            }
            row["total_cpu_ms"] = row["producer_ms"] + row["main_ms"] + row["pool_ms"] + row["redis_ms"]
            rows.append(row)
            print(
                f"{variant:>10} {payload:>5}: {row['wall_ms']:6.2f} ms/sample wall, CPU {row['total_cpu_ms']:6.2f} "
                f"(producer {row['producer_ms']:.2f}, main {row['main_ms']:.2f}, pool {row['pool_ms']:.2f}, "
                f"redis {row['redis_ms']:.2f}), gap {row['gap_ms'] or 0:.2f}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        worker.stop()
        redis.stop()
    return rows


def interval_check(log_dir: Path) -> dict[str, float]:
    """Wall time of collecting 4 zero-work samples with iter_native's default interval (0.5 s) and with 0."""
    redis = BenchRedis().start()
    env = cluster_env(redis.url)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    worker = BenchWorker(env, 1, log_dir, "info")
    worker.args[worker.args.index("batt_tasks")] = "bench.costs_app"
    worker.log = log_dir / "worker-interval.log"
    out: dict[str, float] = {}
    try:
        worker.start()
        for interval in (0.5, 0.0):
            cmd = [sys.executable, "-m", "bench.costs", "--produce", "zero", "--rounds", "3"]
            cmd += ["--ids", json.dumps(["007bbfb7"]), "--interval", str(interval)]
            done = subprocess.run(cmd, env=env, cwd=ROOT, input="go\n" * 4, capture_output=True, text=True)
            walls = [json.loads(x)["wall"] for x in done.stdout.splitlines() if '"round"' in x][1:]
            out[f"interval={interval:g}"] = statistics.median(walls)
    finally:
        worker.stop()
        redis.stop()
    return out


def markdown(rows: list[dict[str, Any]], check: dict[str, float], args: argparse.Namespace) -> str:
    """The cost table."""
    f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        f"Per-sample costs, worker -c {args.concurrency}, {args.rounds} rounds (medians of per-round means), "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| variant | payload | samples | wall ms | CPU ms: total | producer | worker main | pool | redis "
        "| in task ms (mean) | idle gap ms (mean) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['payload']} | {r['samples']} | {f(r['wall_ms'])} | {f(r['total_cpu_ms'])} "
            f"| {f(r['producer_ms'])} | {f(r['main_ms'])} | {f(r['pool_ms'])} | {f(r['redis_ms'])} "
            f"| {f(r['inside_ms'])} | {f(r['gap_ms'])} |"
        )
    lines.append("")
    lines.append("Variants (overrides of batt_tasks.celery): " + "; ".join(f"`{k}` {v}" for k, v in VARIANTS.items()))
    if check:
        lines.append("")
        lines.append(
            "Collecting 4 zero-work samples, wall s: "
            + ", ".join(f"iter_native({k}) {v:.3f}" for k, v in check.items())
            + " (Celery's get_many sleeps `interval` once after its first MGET while results are pending)."
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the cost table, or (``--produce``) be the producer process of one payload."""
    p = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated of {','.join(VARIANTS)}")
    p.add_argument("--payloads", default=",".join(PAYLOADS), help=f"comma-separated of {','.join(PAYLOADS)}")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per payload (default 3)")
    p.add_argument("-c", "--concurrency", type=int, default=1, help="worker pool processes (default 1)")
    p.add_argument("--tasks", type=int, default=16, help="tasks of the main payload (default 16)")
    p.add_argument("--zero-tasks", type=int, default=64, help="tasks of the zero and noop payloads (default 64)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for costs-<time>.json/.md")
    p.add_argument("--produce", choices=PAYLOADS, help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--interval", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.produce:
        _produce(args.produce, json.loads(args.ids), args.rounds, args.interval)
        return 0
    from bench.run import draw
    from producer.data import load_tasks

    variants = [v for v in args.variants.split(",") if v]
    payloads = [x for x in args.payloads.split(",") if x]
    for name in variants:
        if name not in VARIANTS:
            raise SystemExit(f"bench.costs: unknown variant {name!r}; pick from {', '.join(VARIANTS)}")
    for name in payloads:
        if name not in PAYLOADS:
            raise SystemExit(f"bench.costs: unknown payload {name!r}; pick from {', '.join(PAYLOADS)}")
    all_ids = list(load_tasks("arc-agi-1", "train"))
    ids = {
        "noop": draw(all_ids, args.zero_tasks),
        "zero": draw(all_ids, args.zero_tasks),
        "main": draw(all_ids, args.tasks),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = out / f"costs-{stamp}"
    log_dir.mkdir()
    rows = [row for v in variants for row in measure(v, payloads, ids, args, log_dir)]
    check = interval_check(log_dir)
    text = markdown(rows, check, args)
    (out / f"costs-{stamp}.json").write_text(json.dumps({"rows": rows, "interval_check": check}, indent=1))
    (out / f"costs-{stamp}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
