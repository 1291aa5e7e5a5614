"""What every fault scenario shares: the run's plan, the probe's execution log, the producer, the checks.

- :func:`fault_tasks` picks the run's tasks; :class:`Plan` knows every sample of them (``kind[index]`` and
  the digest of its input, as ``tests/batts/fault_probe.py`` logs it).
- :class:`ExecLog` reads the probe's log: which sample started and finished where, how many times.
- :class:`Submit` is a ``batt-submit`` subprocess whose output goes to files (no pipe can fill up).
- :func:`tally` reads a finished run's files and counts samples lost and duplicated in the results;
  :func:`assert_exactly_once` is the check every scenario ends with.
- :func:`unacked_ids` reads the broker's unacknowledged messages (kombu's Redis ``unacked`` hash).
- :func:`result_meta` reads a sample's stored Celery result (state, ``date_done``) from the backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from workers import ROOT, submit_cmd

BATTS = ROOT / "tests" / "batts"
PROBE = BATTS / "fault_probe.py"

Sample = tuple[str, str, int]  # (task_id, kind, index)


def _digest(grid: Any) -> str:
    import sys

    if str(BATTS) not in sys.path:
        sys.path.insert(0, str(BATTS))
    from fault_probe import input_digest

    return input_digest(grid)


@cache
def _arc_train() -> Mapping[str, Any]:
    from producer.data import load_tasks

    return load_tasks("arc-agi-1", "train")


def fault_tasks(count: int, skip: int = 0) -> list[str]:
    """The first ``count`` task ids of ARC-AGI-1 train (after ``skip``) whose sample inputs are all distinct.

    Distinct inputs let the probe's log name every sample by its input's digest.
    """
    tasks = _arc_train()
    chosen: list[str] = []
    for task_id in sorted(tasks)[skip:]:
        task = tasks[task_id]
        digests = [_digest(g) for g, _ in task.train] + [_digest(g) for g, _ in task.test]
        if len(set(digests)) == len(digests):
            chosen.append(task_id)
        if len(chosen) == count:
            break
    return chosen


@dataclass
class Plan:
    """Every sample of a run's tasks, and how the probe names them."""

    ids: list[str]
    samples: list[Sample] = field(init=False)
    by_digest: dict[tuple[str, str], Sample] = field(init=False)

    def __post_init__(self) -> None:
        tasks = _arc_train()
        self.samples = []
        self.by_digest = {}
        for task_id in self.ids:
            task = tasks[task_id]
            for kind, pairs in (("train", task.train), ("test", task.test)):
                for index, (grid, _) in enumerate(pairs):
                    sample = (task_id, kind, index)
                    self.samples.append(sample)
                    self.by_digest[(task_id, _digest(grid))] = sample

    @property
    def counts(self) -> dict[str, int]:
        """Samples per task."""
        return dict(Counter(s[0] for s in self.samples))

    def __len__(self) -> int:
        return len(self.samples)


def celery_id(run_id: str, sample: Sample) -> str:
    """The Celery task id the producer gives a sample (``producer.distributed.sample_task_id``)."""
    return f"{run_id}.{sample[0]}.{sample[1]}.{sample[2]}"


def sample_of(celery_task_id: str) -> Sample:
    """The sample a Celery task id names: ``<run>.<task>.<kind>.<index>``, or a resubmission's ``….r<n>``."""
    _, task_id, kind, index = celery_task_id.split(".")[:4]
    return (task_id, kind, int(index))


@dataclass
class Execution:
    """One execution of one sample by the probe: where, when it started, and when (if) it finished."""

    sample: Sample
    node: str
    pid: int
    started: float
    finished: float | None = None


class ExecLog:
    """The probe's JSON-lines execution log (``BATT_FAULT_LOG``)."""

    def __init__(self, path: Path, plan: Plan) -> None:
        self.path = path
        self.plan = plan

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for raw in self.path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(raw))
        return out

    def executions(self) -> list[Execution]:
        """Every execution: a solve-pass start, finished by the diff pass's end in the same process."""
        runs: list[Execution] = []
        open_by_pid: dict[int, Execution] = {}
        for e in self.events():
            sample = self.plan.by_digest.get((e["task"], e["input"]))
            if sample is None:
                continue
            if e["event"] == "start" and e["pass"] == "solve":
                ex = Execution(sample, e["node"], e["pid"], e["t"])
                runs.append(ex)
                open_by_pid[e["pid"]] = ex
            elif e["event"] == "done" and e["pass"] == "diff":
                ex = open_by_pid.pop(e["pid"], None)
                if ex is not None and ex.sample == sample:
                    ex.finished = e["t"]
        return runs

    def completed(self) -> set[Sample]:
        """Samples with at least one finished execution."""
        return {ex.sample for ex in self.executions() if ex.finished is not None}

    def running(self, node: str | None = None) -> list[Execution]:
        """Executions started but not finished (on ``node``)."""
        return [ex for ex in self.executions() if ex.finished is None and (node is None or ex.node == node)]

    def running_at(self, node: str, at: float) -> set[Sample]:
        """Samples ``node`` was scoring at time ``at``: started before, not finished before."""
        return {
            ex.sample
            for ex in self.executions()
            if ex.node == node and ex.started <= at and (ex.finished is None or ex.finished > at)
        }

    def runs_per_sample(self) -> Counter[Sample]:
        """How many times each sample started."""
        return Counter(ex.sample for ex in self.executions())

    def last_finish(self, samples: Iterable[Sample]) -> float | None:
        """When the last of ``samples`` finished (its last finished execution), or None if one never did."""
        wanted = set(samples)
        last: dict[Sample, float] = {}
        for ex in self.executions():
            if ex.sample in wanted and ex.finished is not None:
                last[ex.sample] = max(last.get(ex.sample, 0.0), ex.finished)
        if not wanted or set(last) != wanted:
            return None
        return max(last.values())

    def stranded(self, held: Iterable[Sample], at: float, survivor: str) -> set[Sample]:
        """Of the samples unacknowledged at time ``at`` (a fault), those the faulty worker held.

        That is: not finished before ``at``, and not started by the surviving worker before ``at``.
        """
        early = {
            ex.sample
            for ex in self.executions()
            if (ex.finished is not None and ex.finished < at) or (ex.node == survivor and ex.started <= at)
        }
        return set(held) - early

    def own_fetches(self, node: str, since: float, delivered: Mapping[Sample, float], visibility: float) -> set[Sample]:
        """Samples ``node`` started after ``since`` sooner than their delivery time + the visibility timeout.

        Such a start cannot be a redelivery of another worker's message (that waits for the timeout), so it
        is a message ``node`` fetched itself around ``since``: it was unacknowledged then, yet never stranded.
        """
        return {
            ex.sample
            for ex in self.executions()
            if ex.node == node
            and ex.sample in delivered
            and since < ex.started < delivered[ex.sample] + visibility - 0.5
        }

    def wait_completed(self, n: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
        """Wait until ``n`` samples have finished (mid-run faults land after this); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.completed()) >= n:
                return
            if alive is not None and not alive():
                raise AssertionError(f"the run ended before {n} samples finished")
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {n} finished samples")


class Submit:
    """A ``batt-submit`` subprocess; its stdout and stderr go to a file beside ``out`` (in the test's tmp_path)."""

    def __init__(self, env: Mapping[str, str], out: Path, *args: str, argv: list[str] | None = None) -> None:
        self.out = out
        self.env = dict(env)
        self.argv = argv or submit_cmd(*args, "--out", str(out))
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="batt-submit-", suffix=".log", dir=out.parent)
        os.close(fd)
        self.log = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.finished: float | None = None

    def start(self, **popen: Any) -> Submit:
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, **popen)
        self.started = time.time()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the exit code; kill the producer and fail after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"batt-submit did not finish within {timeout:.0f}s:\n{self.text()[-3000:]}") from None
        self.finished = self.finished or time.time()
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def run_dir(self) -> Path:
        dirs = [d for d in self.out.iterdir() if d.is_dir()] if self.out.exists() else []
        assert len(dirs) == 1, f"expected one run directory in {self.out}, found {dirs}"
        return dirs[0]

    def cleanup(self) -> None:
        self.kill()
        self.log.unlink(missing_ok=True)


@dataclass
class Tally:
    """What a finished run's files say, against the plan."""

    expected: int
    lines: dict[str, int]  # task id → number of lines in results.jsonl
    scored: int  # samples accounted for in results.jsonl (each task's train + test, once per line)
    lost: int  # samples of the plan without a result
    duplicated: int  # samples with more than one result
    status: Counter[str]  # ok / errors / timeouts over the task lines
    summary: dict[str, Any]
    problems: list[str]
    task_lines: dict[str, dict[str, Any]]


def tally(run_dir: Path, plan: Plan) -> Tally:
    """Count, from ``results.jsonl`` and ``summary.json``, the samples of ``plan`` lost and duplicated."""
    counts = plan.counts
    lines: Counter[str] = Counter()
    task_lines: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    status: Counter[str] = Counter()
    scored = lost = duplicated = 0
    results = run_dir / "results.jsonl"
    raw_lines = results.read_text().splitlines() if results.exists() else []
    for n, raw in enumerate(raw_lines, 1):
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(f"results.jsonl line {n} is not JSON: {raw[:80]!r}")
            continue
        task_id = line["task_id"]
        lines[task_id] += 1
        n = int(line["samples"]["train"]) + int(line["samples"]["test"])
        n_status = int(line["ok"]) + int(line["errors"]) + int(line["timeouts"])
        scored += n
        for key in ("ok", "errors", "timeouts"):
            status[key] += int(line[key])
        if task_id not in counts:
            problems.append(f"{task_id}: not in the plan")
            duplicated += n
            continue
        if lines[task_id] > 1:
            problems.append(f"{task_id}: {lines[task_id]} lines in results.jsonl")
            duplicated += n
            continue
        task_lines[task_id] = line
        if n != counts[task_id] or n_status != counts[task_id]:
            problems.append(f"{task_id}: {n} samples, {n_status} statuses, expected {counts[task_id]}")
        lost += max(0, counts[task_id] - n)
        duplicated += max(0, n - counts[task_id])
    for task_id, n in counts.items():
        if task_id not in lines:
            lost += n
            problems.append(f"{task_id}: no line in results.jsonl")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if summary.get("samples") != len(plan) or summary.get("samples_done") != len(plan):
        problems.append(
            f"summary.json: samples={summary.get('samples')} samples_done={summary.get('samples_done')}, "
            f"expected {len(plan)}"
        )
    return Tally(len(plan), dict(lines), scored, lost, duplicated, status, summary, problems, task_lines)


def outcome_counts(
    plan: Plan, t: Tally, runs: Mapping[Any, int], recover: float | None, code: int | None
) -> dict[str, Any]:
    """The counted columns of a scenario's outcome row: samples, lost, duplicated, ran twice, recovery, exit code."""
    return {
        "samples": len(plan),
        "lost": t.lost,
        "duplicated": t.duplicated,
        "reexecuted": sum(1 for n in runs.values() if n > 1),
        "recover_s": recover,
        "exit_code": code,
    }


def assert_exactly_once(t: Tally) -> None:
    """Every sample of the plan has exactly one result: no task line missing or repeated, all counts right."""
    assert t.lost == 0, f"{t.lost} samples lost: {t.problems}"
    assert t.duplicated == 0, f"{t.duplicated} samples duplicated: {t.problems}"
    assert not t.problems, t.problems
    assert t.scored == t.expected
    assert sum(t.status.values()) == t.expected


def assert_run_scored_all_once(code: int | None, run: Submit, t: Tally, plan: Plan) -> None:
    """The run exited 0 and every sample of the plan has exactly one result, and it is ok."""
    assert code == 0, run.text()[-3000:]
    assert_exactly_once(t)
    assert t.status["ok"] == len(plan), t.problems


def unacked_ids(broker: Any) -> set[str]:
    """Task ids of the messages delivered to some worker and not acknowledged yet (kombu Redis ``unacked``)."""
    ids = set()
    for raw in broker.hvals("unacked"):
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            ids.add(json.loads(raw)[0]["headers"]["id"])
    return ids


def unacked_deliveries(broker: Any) -> dict[str, float]:
    """Task id → when it was delivered (UNIX time), for every unacknowledged message (kombu ``unacked_index``)."""
    times = {tag: score for tag, score in broker.zrange("unacked_index", 0, -1, withscores=True)}
    out: dict[str, float] = {}
    for tag, raw in broker.hgetall("unacked").items():
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            out[json.loads(raw)[0]["headers"]["id"]] = float(times.get(tag, 0.0))
    return out


def queued_ids(broker: Any, queue: str = "batt") -> set[str]:
    """Task ids of the messages waiting in ``queue``."""
    ids = set()
    for raw in broker.lrange(queue, 0, -1):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ids.add(json.loads(raw)["headers"]["id"])
    return ids


def result_meta(backend: Any, celery_task_id: str) -> dict[str, Any] | None:
    """The stored Celery result of a task (``status``, ``result``, ``date_done`` as a UNIX time), or None."""
    raw = backend.get(f"celery-task-meta-{celery_task_id}")
    if raw is None:
        return None
    meta = json.loads(raw)
    if meta.get("date_done"):
        done = datetime.fromisoformat(meta["date_done"])
        meta["done_at"] = (done if done.tzinfo else done.replace(tzinfo=UTC)).timestamp()
    return meta


def run_id_of(run_dir: Path) -> str:
    """The run id of a run directory."""
    return run_dir.name


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until true; return the time (UNIX) it became true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")


# --------------------------------------------------------------------------- multi-host (network namespaces)


def require_netns() -> None:
    """Skip a multi-host test where network namespaces are unavailable; with ``CI=true`` as root, fail instead."""
    import netns
    import pytest

    reason = netns.netns_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"CI runs as root, so the multi-host fault test must run, but: {reason}")
    pytest.skip(f"multi-host fault test needs network namespaces: {reason}")


def start_ns_redis(net: Any, host: str, port: int, directory: Path) -> None:
    """A redis-server (AOF on) in ``host``'s namespace, listening on every address there."""
    from redis_proc import host_redis_argv

    net.popen(host, host_redis_argv(port, directory, appendonly=True))


def two_host_run(net: Any, env: Callable[..., dict[str, str]], ids: list[str], out: Path) -> tuple[list[Any], Submit]:
    """Workers w1 and w2 (2 pool processes each) on host1 and host2, and the producer on the broker host.

    ``env(**extra)`` gives each process's environment. The producer runs with ``--no-worker-warn 600``: it never
    pings, so what happens to a cut worker's samples is the broker's and the workers' own doing.
    """
    from workers import Worker

    workers = []
    for n in (1, 2):
        w = Worker(env(BATT_FAULT_NODE=f"w{n}"), concurrency=2, name=f"w{n}")
        w.args = net.command(f"host{n}", w.args)  # ip netns exec execs: the process is the worker itself
        workers.append(w)
    argv = submit_cmd("-i", *ids, "-b", str(PROBE), "-t", "2", "-q", "--require-broker", "--no-worker-warn", "600")
    run = Submit(env(), out, argv=net.command("broker", [*argv, "--out", str(out)]))
    return workers, run


def stop_workers_keep_logs(workers: Iterable[Any], keep: Path) -> None:
    """SIGKILL each worker's tree and move its log into ``keep`` (the test's tmp_path, which pytest keeps)."""
    import shutil

    for w in workers:
        w.kill()
        with contextlib.suppress(OSError):
            shutil.move(w.log, keep / f"worker-{w.node.split('@')[0]}.log")
