"""Queue overhead per sample, Redis vs RabbitMQ as the broker (issue 16): ``python -m bench.brokers``.

The zero-work batt (``bench/zero_batt.py``) on the first ``--tasks`` ARC-AGI-1 training tasks, through
``batt-submit --require-broker`` and one long-lived ``celery worker -c N`` per broker: a private redis-server
(broker db 0; it is also the result backend of both) and a private RabbitMQ node (``tests/rabbit_proc.py``:
quorum queue, publisher confirms, as ``batt_tasks/celery.py`` configures it). Brokers run in alternation
after an untimed warm-up round; the figure is the median over ``--repeats`` rounds of the run's steady-state
wall (``summary.json``'s ``wall_seconds``: first sample submitted → last task aggregated) ÷ samples, which
for a batt that does no work is what the path costs per sample.

    python -m bench.brokers                       # 128 tasks, -c 1, 3 rounds
    python -m bench.brokers --tasks 64 --concurrency 2 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cluster import ROOT, BenchRedis, BenchWorker, cluster_env

ZERO = ROOT / "bench" / "zero_batt.py"


def _run(env: dict[str, str], ids: list[str], out: Path) -> dict:
    argv = [sys.executable, "-m", "producer.cli", "-i", *ids, "-b", str(ZERO), "-q", "--require-broker"]
    done = subprocess.run([*argv, "--out", str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"batt-submit failed ({done.returncode}): {done.stderr[-2000:]}")
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return json.loads((run_dir / "summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.brokers", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=128, help="first N ARC-AGI-1 training tasks (default 128)")
    p.add_argument("--concurrency", type=int, default=1, help="worker pool processes (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    from rabbit_proc import RabbitServer

    from producer.data import load_tasks

    ids = sorted(load_tasks("arc-agi-1", "train"))[: args.tasks]
    tmp = Path(tempfile.mkdtemp(prefix="bench-brokers-"))
    redis = BenchRedis().start()
    rabbit = RabbitServer(management=False)
    workers: dict[str, BenchWorker] = {}
    try:
        rabbit.start()
        base = cluster_env(redis.url)
        envs = {
            "redis": base,
            "rabbitmq": dict(base, BATT_BROKER_URL=rabbit.url, BATT_RESULT_BACKEND=f"{redis.url}/2"),
        }
        for name, env in envs.items():
            (tmp / name).mkdir()
            workers[name] = BenchWorker(env, args.concurrency, tmp / name).start()
        per_sample: dict[str, list[float]] = {name: [] for name in envs}
        for round_ in range(args.repeats + 1):  # round 0: warm-up, not counted
            for name, env in envs.items():
                s = _run(env, ids, tmp / f"{name}-{round_}")
                if round_:
                    per_sample[name].append(1000 * s["wall_seconds"] / s["samples"])
                print(f"round {round_} {name}: {s['samples']} samples, {s['wall_seconds']:.2f} s", file=sys.stderr)
        print(f"zero-work batt, {len(ids)} tasks, worker -c {args.concurrency}, {args.repeats} rounds, medians")
        print("| broker | overhead ms/sample (median) | min–max |")
        print("|---|--:|--:|")
        for name, xs in per_sample.items():
            print(f"| {name} | {statistics.median(xs):.2f} | {min(xs):.2f}–{max(xs):.2f} |")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
        print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    finally:
        for w in workers.values():
            w.stop()
        rabbit.cleanup()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
