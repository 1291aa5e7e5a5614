"""The benchmark: the same tasks and the same batt through every way of running them, in alternation.

    python -m bench.run                          # built-in battery on 32 fixed ARC-AGI-1 training tasks
    python -m bench.run -b path/to/batt.py --repeats 3
    python -m bench.run --tasks 2 --zero-tasks 2 --repeats 1 --warmup 0   # a smoke run
    python -m bench.run --publish                # also write the Markdown table to bench/RESULTS.md

Modes (``--modes``):

- ``sequential``: ``batt-submit --local`` (one long-lived child, one sample at a time);
- ``replaced``: the design batt-queue replaces, a fresh ``ProcessPoolExecutor(3)`` per task (fork);
- ``replaced-spawn``: the same with fresh interpreters importing the batt per pool (main batt only);
- ``pool``: one persistent ``ProcessPoolExecutor`` with one process per core over all samples;
- ``dist``: ``batt-submit --require-broker`` against a real redis-server and a real
  ``celery -A batt_tasks worker -P prefork -c N`` for each N of ``--concurrency`` (default 1 and cores);
- ``inproc``: a plain in-process loop, the reference cost of the work itself.

Each batt (``-b``, default the built-in battery, plus the zero-work batt ``bench/zero_batt.py`` on
``--zero-tasks`` tasks) goes through every mode once per round; an untimed warm-up round comes first.
The harness starts its own Redis on a free port and keeps one worker per concurrency (each with its own
Redis) alive for the whole benchmark, and replaces a cluster that something outside killed (recorded
as an incident). It writes ``bench-<time>.json`` and ``.md`` (and ``latest.*``) under ``--out``, and
exits 1 when two runs disagree on any score.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from batt_tasks.loader import DEFAULT_BATT, resolve
from batt_tasks.scoring import TIMING_FIELDS
from bench.cluster import ROOT, BenchRedis, BenchWorker, RssSampler, cluster_env
from bench.report import Measurement, Mode, check_targets, markdown, summarize
from producer.data import load_tasks

ZERO_BATT = str(ROOT / "bench" / "zero_batt.py")
TASK_SEED = 2024  # the fixed draw of the benchmark's tasks
MAIN_LABEL, ZERO_LABEL = "main batt", "zero-work batt"
MODE_ORDER = ("sequential", "replaced", "replaced-spawn", "pool", "dist", "inproc")


class RunFailed(RuntimeError):
    """A mode's run ended badly (non-zero exit, or longer than --run-timeout)."""


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def draw(all_ids: Sequence[str], n: int, seed: int = TASK_SEED) -> list[str]:
    """``n`` task ids drawn reproducibly (sorted), or all of them when ``n`` covers the data set."""
    ordered = sorted(all_ids)
    if n >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, n))


def digest(lines: Sequence[Mapping[str, Any]]) -> str:
    """A hash of task lines without their timing field: equal hashes mean identical scores."""
    clean = sorted(
        ({k: v for k, v in line.items() if k not in TIMING_FIELDS} for line in lines), key=lambda x: x["task_id"]
    )
    return hashlib.sha256(json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def first_difference(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> str:
    """Where two sets of task lines first differ (task and field), for the mismatch report."""
    da = {x["task_id"]: x for x in a}
    db = {x["task_id"]: x for x in b}
    if da.keys() != db.keys():
        return f"different tasks: {sorted(da.keys() ^ db.keys())[:5]}"
    for tid in sorted(da):
        for key in sorted(set(da[tid]) | set(db[tid])):
            if key not in TIMING_FIELDS and da[tid].get(key) != db[tid].get(key):
                return f"task {tid} field {key!r}"
    return "no difference found"


def _cpu_of(pids: Sequence[int]) -> float:
    """User+system CPU seconds of live processes ``pids`` and their descendants."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Bench:
    """Holds the benchmark's settings, clusters and measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cores = args.cores
        self.out = Path(args.out).expanduser().resolve()
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.work = self.out / f"bench-{self.stamp}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.measurements: list[Measurement] = []
        self.clusters: dict[int, tuple[BenchRedis, BenchWorker]] = {}
        self.reference: dict[str, tuple[str, str, list[dict[str, Any]]]] = {}
        self.mismatches: list[str] = []
        self.incidents: list[str] = []
        self.modes = self._modes()
        self.log(f"results in {self.work}")

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    def _modes(self) -> list[Mode]:
        wanted = [m.strip() for m in self.args.modes.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in MODE_ORDER]
        if unknown:
            raise SystemExit(f"bench: unknown mode {unknown[0]!r}; pick from {', '.join(MODE_ORDER)}")
        modes: list[Mode] = []
        for name in MODE_ORDER:
            if name not in wanted:
                continue
            if name == "sequential":
                modes.append(Mode("sequential", "local", 1, "(1) batt-submit --local, sequential"))
            elif name == "replaced":
                label = "(2) replaced design: new ProcessPoolExecutor(3) per task, fork"
                modes.append(Mode("replaced", "modes", 3, label, args=("--start-method", "fork")))
            elif name == "replaced-spawn":
                label = "(2s) replaced design, spawn: pool processes import the batt (main batt only)"
                modes.append(
                    Mode("replaced-spawn", "modes", 3, label, "replaced", ("--start-method", "spawn"), zero=False)
                )
            elif name == "pool":
                modes.append(Mode("pool", "modes", self.cores, f"(3) persistent ProcessPoolExecutor({self.cores})"))
            elif name == "dist":
                for c in self.args.concurrency:
                    modes.append(Mode(f"dist-c{c}", "dist", c, f"(4) batt-queue: batt-submit + worker -c {c}"))
            else:
                modes.append(Mode("inproc", "modes", 1, "in-process loop (reference, no processes)"))
        return modes

    # -- cluster -------------------------------------------------------------------------------

    def start_clusters(self) -> None:
        """One redis-server and one long-lived worker per concurrency, started in parallel, before timing."""
        for c in sorted({m.procs for m in self.modes if m.kind == "dist"}):
            redis = BenchRedis().start()
            self.clusters[c] = (redis, BenchWorker(cluster_env(redis.url), c, self.work, self.args.worker_loglevel))
            self.clusters[c][1].launch()
        for c, (_, worker) in self.clusters.items():
            worker.wait_ready()
            self.log(f"worker -c {c} ready on {worker.env['BATT_BROKER_URL']}")

    def stop_clusters(self) -> None:
        for redis, worker in self.clusters.values():
            worker.stop()
            redis.stop()

    def cluster_problem(self, c: int) -> str | None:
        """Why the cluster of worker -c ``c`` cannot take a run (a worker or Redis gone), or None."""
        redis, worker = self.clusters[c]
        if worker.proc is None or worker.proc.poll() is not None:
            code = None if worker.proc is None else worker.proc.returncode
            last = [x for x in worker.text().splitlines() if x.strip()][-1:] or [""]
            return f"worker -c {c} exited (code {code}; last log line: {last[0][:160]!r})"
        if not redis.ping():
            return f"the redis-server of worker -c {c} does not answer"
        return None

    def restart_cluster(self, c: int, why: str) -> None:
        """Replace a broken cluster by a fresh one (recorded as an incident in the report)."""
        self.incidents.append(f"{time.strftime('%H:%M:%S')}: {why}; restarted Redis and worker -c {c}")
        self.log(f"  INCIDENT: {why}; restarting")
        redis, worker = self.clusters[c]
        worker.stop()
        redis.stop()
        redis = BenchRedis().start()
        worker = BenchWorker(cluster_env(redis.url), c, self.work, self.args.worker_loglevel)
        worker.log = self.work / f"worker-c{c}-{len(self.incidents)}.log"
        self.clusters[c] = (redis, worker.start())

    def measure(self, mode: Mode, batt_label: str, batt: str, ids_file: Path, repeat: int) -> Measurement:
        """One run of ``mode``; a distributed run whose cluster broke (killed from outside) is redone once
        on a fresh cluster, after an untimed run that lets its pool processes import the batt."""
        if mode.kind != "dist":
            return self.run_mode(mode, batt_label, batt, ids_file, repeat)
        for attempt in (1, 2):
            problem = self.cluster_problem(mode.procs)
            if problem is not None:
                self.restart_cluster(mode.procs, f"before {mode.name} round {repeat}: {problem}")
                self.run_mode(mode, batt_label, batt, ids_file, repeat, record=False)
            try:
                return self.run_mode(mode, batt_label, batt, ids_file, repeat)
            except RunFailed as exc:
                if attempt == 2 or self.cluster_problem(mode.procs) is None:
                    raise
                self.log(f"  {mode.name} round {repeat} failed ({str(exc)[:200]}); its cluster broke")
        raise AssertionError("unreachable")

    # -- one run -------------------------------------------------------------------------------

    def _timed(
        self, cmd: list[str], env: Mapping[str, str], extra_pids: Sequence[int]
    ) -> tuple[float, int, tuple[float, float], subprocess.CompletedProcess[str]]:
        """Run ``cmd`` to completion: its wall time, peak tree RSS and CPU seconds (all, and of ``extra_pids``)."""
        holder: dict[str, int] = {}
        cpu_children = _children_cpu()
        cpu_cluster = _cpu_of(extra_pids)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            with RssSampler(lambda: [*holder.values(), *extra_pids]) as sampler:
                t0 = time.perf_counter()
                proc = subprocess.Popen(
                    cmd, env=dict(env), cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True
                )
                holder["pid"] = proc.pid
                try:
                    code = proc.wait(self.args.run_timeout)
                except BaseException as exc:  # a hung run, or Ctrl-C: take the run's whole process group down
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if isinstance(exc, subprocess.TimeoutExpired):
                        raise RunFailed(
                            f"{shlex.join(cmd[:6])} ... ran longer than {self.args.run_timeout:g}s"
                        ) from None
                    raise
                wall = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            done = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
        cluster = _cpu_of(extra_pids) - cpu_cluster
        return wall, sampler.peak, (_children_cpu() - cpu_children + cluster, cluster), done

    def run_mode(
        self, mode: Mode, batt_label: str, batt: str, ids_file: Path, repeat: int, record: bool = True
    ) -> Measurement:
        """One timed run of ``mode`` on ``batt`` (``record=False``: a warm-up, neither checked nor kept)."""
        a = self.args
        tag = f"{'main' if batt_label == MAIN_LABEL else 'zero'}-{mode.name}-r{repeat}"
        ids = json.loads(ids_file.read_text())
        if mode.kind == "modes":
            result = self.work / f"{tag}.json"
            cmd = [sys.executable, "-m", "bench.modes", mode.runner or mode.name, *mode.args, "-b", batt]
            cmd += ["--ids-file", str(ids_file)]
            cmd += ["--data", a.data, "--split", a.split, "--procs", str(mode.procs), "--out", str(result)]
            wall, peak, cpu, done = self._timed(cmd, os.environ, [])
            if done.returncode != 0:
                raise RunFailed(f"{shlex.join(cmd)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
            data = json.loads(result.read_text())
            result.unlink()
            lines, work, samples = data["lines"], float(data["work_seconds"]), int(data["samples"])
        else:
            runs = self.work / "runs" / tag
            cmd = [sys.executable, "-m", "producer.cli", "-q", "--data", a.data, "--split", a.split, "-b", batt]
            cmd += ["--out", str(runs)]
            # A worker killed from outside must fail the run (and the harness restarts it), not hang it.
            cmd += ["--local"] if mode.kind == "local" else ["--require-broker", "--no-worker-timeout", "60"]
            cmd += ["-i", *ids]
            if mode.kind == "local":
                env, extra = dict(os.environ), []
                # Never reach for a broker in local mode, least of all the machine's own.
                env["BATT_BROKER_URL"] = "redis://127.0.0.1:1/0"
            else:
                redis, worker = self.clusters[mode.procs]
                env, extra = worker.env, [p for p in (worker.pid, redis.proc.pid if redis.proc else None) if p]
            wall, peak, cpu, done = self._timed(cmd, env, extra)
            if done.returncode not in (0, 1):
                shutil.rmtree(runs, ignore_errors=True)
                raise RunFailed(f"{shlex.join(cmd[:12])} ... exited with {done.returncode}:\n{done.stderr[-3000:]}")
            (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
            summary = json.loads((run_dir / "summary.json").read_text())
            lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]
            work, samples = float(summary["wall_seconds"]), int(summary["samples"])
            expected = "local" if mode.kind == "local" else "distributed"
            if summary.get("mode") != expected:
                raise RuntimeError(f"{tag}: batt-submit ran in {summary.get('mode')} mode, not {expected}")
            if summary["samples_done"] != samples:
                raise RuntimeError(f"{tag}: only {summary['samples_done']} of {samples} samples done")
            if not a.keep_runs:
                shutil.rmtree(runs, ignore_errors=True)
        errors = sum(int(x.get("errors", 0)) + int(x.get("timeouts", 0)) for x in lines)
        m = Measurement(
            batt_label,
            mode.name,
            repeat,
            wall,
            work,
            samples,
            peak,
            cpu[0],
            cpu[1],
            errors,
            digest(lines),
            os.getloadavg()[0],
        )
        if record:
            self._check_scores(m, lines)
        self.log(
            f"  {tag:<24} steady {work:7.3f}s  whole {wall:7.3f}s  {samples} samples  "
            f"rss {peak / 2**20:6.0f} MB  cpu {cpu[0]:6.2f}s  load {m.load:4.1f}  {m.digest}"
            + ("" if record else "  (warm-up after a restart)")
        )
        return m

    def _check_scores(self, m: Measurement, lines: list[dict[str, Any]]) -> None:
        ref = self.reference.get(m.batt)
        if ref is None:
            self.reference[m.batt] = (m.mode, m.digest, lines)
            return
        mode, ref_digest, ref_lines = ref
        if m.digest != ref_digest:
            where = first_difference(ref_lines, lines)
            text = f"{m.batt}: {m.mode} round {m.repeat} differs from {mode} ({where})"
            self.mismatches.append(text)
            self.log(f"  SCORE MISMATCH: {text}")

    # -- the benchmark -------------------------------------------------------------------------

    def batts(self) -> list[dict[str, Any]]:
        """The batts to measure with their task selections."""
        a = self.args
        tasks = load_tasks(a.data, a.split)
        if a.ids:
            unknown = [i for i in a.ids if i not in tasks]
            if unknown:
                raise SystemExit(f"bench: unknown task id {unknown[0]!r} in {a.data} {a.split}")
            main_ids, selection = sorted(dict.fromkeys(a.ids)), "chosen with -i"
        else:
            main_ids, selection = draw(list(tasks), a.tasks), f"drawn with seed {TASK_SEED}"
        batts = [{"label": MAIN_LABEL, "ref": resolve(a.batt), "ids": main_ids, "selection": selection}]
        if a.zero_tasks > 0:
            zero_ids = draw(list(tasks), a.zero_tasks)
            batts.append(
                {"label": ZERO_LABEL, "ref": ZERO_BATT, "ids": zero_ids, "selection": f"drawn with seed {TASK_SEED}"}
            )
        for b in batts:
            b["tasks"] = len(b["ids"])
            b["samples"] = sum(len(tasks[t].train) + len(tasks[t].test) for t in b["ids"])
            b["ids_file"] = self.work / f"ids-{'main' if b['label'] == MAIN_LABEL else 'zero'}.json"
            b["ids_file"].write_text(json.dumps(b["ids"]))
            if b["ref"] == DEFAULT_BATT:
                from batt_tasks.battery import CANDIDATES

                b["candidates"] = len(CANDIDATES)
        return batts

    def run(self) -> dict[str, Any]:
        a = self.args
        batts = self.batts()
        try:
            self.start_clusters()
            for repeat in range(0, a.repeats + 1):
                if repeat == 0 and a.warmup == 0:
                    continue
                self.log(f"round {repeat}{' (warm-up, not timed)' if repeat == 0 else ''} of {a.repeats}")
                for b in batts:
                    for mode in self.modes:
                        if b["label"] == ZERO_LABEL and not mode.zero:
                            continue
                        self.measurements.append(self.measure(mode, b["label"], b["ref"], b["ids_file"], repeat))
        finally:
            self.stop_clusters()
        return self.report(batts)

    def report(self, batts: list[dict[str, Any]]) -> dict[str, Any]:
        stats = summarize(self.measurements, self.modes, [b["label"] for b in batts], self.cores)
        for b in batts:
            inproc = stats[b["label"]].get("inproc")
            b["inproc_ms"] = "—" if inproc is None else f"{inproc['work_median'] * 1000 / b['samples']:.2f}"
            b["ids_file"] = str(b["ids_file"])
        zero = ZERO_LABEL if any(b["label"] == ZERO_LABEL for b in batts) else None
        order = [m.name for m in self.modes if m.name != "inproc"] + ["inproc"]
        report = {
            "command": self.args.command,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": machine(self.cores),
            "data": self.args.data,
            "split": self.args.split,
            "repeats": self.args.repeats,
            "warmup": self.args.warmup,
            "batts": batts,
            "modes": [m.__dict__ for m in self.modes],
            "mode_order": order,
            "stats": stats,
            "targets": check_targets(stats, MAIN_LABEL, zero, self.cores),
            "mismatches": self.mismatches,
            "incidents": self.incidents,
            "measurements": [m.as_dict() for m in self.measurements],
        }
        text = markdown(report)
        for name in (f"bench-{self.stamp}", "latest"):
            (self.out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str))
            (self.out / f"{name}.md").write_text(text)
        if self.args.publish:
            (ROOT / "bench" / "RESULTS.md").write_text(text)
        if not self.args.keep_runs:
            shutil.rmtree(self.work / "runs", ignore_errors=True)
        return report


def machine(n_cores: int) -> dict[str, Any]:
    """What the numbers came from."""
    import celery
    import kombu
    import redis

    from bench.cluster import redis_server_binary

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        version = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10)
        server = " ".join(version.stdout.split()[:3])
    except (OSError, RuntimeError, subprocess.SubprocessError):
        server = "redis-server ?"
    return {
        "cores": n_cores,
        "cpu_model": model,
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "redis_server": server,
    }


def _int_list(text: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: concurrencies must be ≥ 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The harness's options."""
    n = cores()
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--batt", default=DEFAULT_BATT, help=f"batt module or .py file (default {DEFAULT_BATT})")
    p.add_argument("--tasks", type=int, default=32, metavar="N", help="N tasks drawn with a fixed seed (default 32)")
    p.add_argument("-i", "--ids", nargs="+", metavar="ID", help="exactly these task ids instead of --tasks")
    p.add_argument(
        "--zero-tasks",
        type=int,
        default=128,
        metavar="N",
        help="tasks for the zero-work batt (queue overhead); 0 skips it (default 128)",
    )
    p.add_argument("--repeats", type=int, default=5, metavar="K", help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, choices=(0, 1), help="untimed warm-up round first (default 1)")
    p.add_argument(
        "--modes", default=",".join(MODE_ORDER), help=f"comma-separated subset of {','.join(MODE_ORDER)} (default all)"
    )
    p.add_argument(
        "--concurrency",
        type=_int_list,
        default=sorted({1, n}),
        metavar="N,M",
        help=f"worker -c values of the dist mode (default 1,{n})",
    )
    p.add_argument("--cores", type=int, default=n, help=f"cores to plan for: pool size, targets (default {n})")
    p.add_argument("--data", default="arc-agi-1", help="data set (default arc-agi-1)")
    p.add_argument("--split", default="train", help="split (default train)")
    p.add_argument(
        "--out", default=str(ROOT / "bench" / "results"), help="directory for results (default bench/results)"
    )
    p.add_argument("--publish", action="store_true", help="also write the Markdown report to bench/RESULTS.md")
    p.add_argument("--keep-runs", action="store_true", help="keep batt-submit's run directories")
    p.add_argument("--worker-loglevel", default="info", help="worker log level (default info, as deployed)")
    p.add_argument(
        "--run-timeout", type=float, default=1800, metavar="S", help="kill a run that takes longer (default 1800)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--render", metavar="JSON", help="only print the Markdown report of a saved bench-*.json")
    return p


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    """Run the benchmark; 0 when every run of every mode scored identically, 1 otherwise."""
    args = build_parser().parse_args(argv)
    if args.render:
        echo(markdown(json.loads(Path(args.render).read_text())))
        return 0
    if args.repeats < 1 or args.tasks < 1 or args.zero_tasks < 0:
        raise SystemExit("bench: --repeats and --tasks must be ≥ 1, --zero-tasks ≥ 0")
    args.command = " ".join(["python -m bench.run", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    report = Bench(args).run()
    if not args.quiet:
        echo(markdown(report))
    return 1 if report["mismatches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
