"""Turning the benchmark's measurements into statistics, target checks and a Markdown report."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Targets of issue 8, checked on the main batt (not the zero-work one) for batt-queue with as many
# worker processes as cores.
TARGET_VS_SEQUENTIAL = 1.85
TARGET_VS_POOL = 0.95
TARGET_VS_REPLACED = 2.5
TARGET_OVERHEAD_MS = 2.0
# Targets of issue 14 (task events off by default), same run: the persistent pool on the main batt, and
# the zero-work batt's queue overhead per sample (5.7-7.0 ms with task events on).
TARGET14_VS_POOL = 0.85
TARGET14_OVERHEAD_MS = 4.5


@dataclass(frozen=True)
class Mode:
    """One way of running the samples."""

    name: str  # inproc, sequential, replaced, pool, dist-c1, dist-c2, ...
    kind: str  # "modes" (bench.modes process), "local" (batt-submit --local), "dist" (batt-submit on a worker)
    procs: int  # processes that score samples
    label: str  # what the table says
    runner: str = ""  # the bench.modes mode, when it differs from the name
    args: tuple[str, ...] = ()  # extra arguments of the runner
    zero: bool = True  # also run on the zero-work batt

    def parallel(self, cores: int) -> int:
        """Samples that can run at the same time on this machine."""
        return max(1, min(self.procs, cores))


@dataclass
class Measurement:
    """One timed run of one mode on one batt."""

    batt: str  # the batt's label in the report
    mode: str
    repeat: int  # 0: warm-up, not in the statistics
    wall_total: float  # seconds, process start to exit, measured by the harness
    wall_work: float  # seconds, first sample submitted to last task done, reported by the mode
    samples: int
    peak_rss_bytes: int  # peak of the summed RSS of every process of the mode (and its cluster)
    cpu_seconds: float  # user+system CPU of every process of the mode (and its cluster) during the run
    cpu_cluster: float  # the part of cpu_seconds spent by the worker (main and pool) and redis-server
    errors: int  # sample results with status error or timeout
    digest: str  # hash of the task lines without timings: equal digests, identical scores
    load: float  # the machine's 1-minute load average when the run ended

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(
    measurements: Sequence[Measurement], modes: Sequence[Mode], batts: Sequence[str], cores: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per batt and mode: medians, throughput, ratios, overhead, peak RSS, CPU and score agreement."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for batt in batts:
        rows: dict[str, dict[str, Any]] = {}
        for mode in modes:
            ms = [m for m in measurements if m.batt == batt and m.mode == mode.name and m.repeat > 0]
            if not ms:
                continue
            samples = ms[0].samples
            work = [m.wall_work for m in ms]
            total = [m.wall_total for m in ms]
            rows[mode.name] = {
                "label": mode.label,
                "procs": mode.procs,
                "repeats": len(ms),
                "samples": samples,
                "work_median": _median(work),
                "work_min": min(work),
                "work_max": max(work),
                "total_median": _median(total),
                "total_min": min(total),
                "total_max": max(total),
                "samples_per_s": samples / _median(work) if _median(work) else None,
                "peak_rss_mb": max(m.peak_rss_bytes for m in ms) / 2**20,
                "cpu_ms_per_sample": _median([m.cpu_seconds for m in ms]) * 1000 / samples if samples else None,
                "cluster_cpu_ms_per_sample": _median([m.cpu_cluster for m in ms]) * 1000 / samples if samples else None,
                "load_median": _median([m.load for m in ms]),
                "errors": max(m.errors for m in ms),
            }
        seq, pool, rep, spawn, inproc = (
            rows.get(n) for n in ("sequential", "pool", "replaced", "replaced-spawn", "inproc")
        )
        for name, row in rows.items():
            mode = next(m for m in modes if m.name == name)
            row["x_sequential_work"] = _ratio(seq and seq["work_median"], row["work_median"])
            row["x_sequential_total"] = _ratio(seq and seq["total_median"], row["total_median"])
            row["x_pool_work"] = _ratio(pool and pool["work_median"], row["work_median"])
            row["x_pool_total"] = _ratio(pool and pool["total_median"], row["total_median"])
            row["x_replaced_work"] = _ratio(rep and rep["work_median"], row["work_median"])
            row["x_replaced_total"] = _ratio(rep and rep["total_median"], row["total_median"])
            row["x_replaced_spawn_work"] = _ratio(spawn and spawn["work_median"], row["work_median"])
            row["x_replaced_spawn_total"] = _ratio(spawn and spawn["total_median"], row["total_median"])
            if inproc is not None and row["samples"]:
                ideal = inproc["work_median"] / mode.parallel(cores)
                row["overhead_ms"] = (row["work_median"] - ideal) * 1000 / row["samples"]
            else:
                row["overhead_ms"] = None
        out[batt] = rows
    return out


def check_targets(
    stats: Mapping[str, Mapping[str, Mapping[str, Any]]], main_batt: str, zero_batt: str | None, cores: int
) -> list[dict[str, Any]]:
    """The issue's targets against the measured statistics (``met`` is None when not measured)."""
    dist = f"dist-c{cores}"
    main = stats.get(main_batt, {}).get(dist, {})
    zero = stats.get(zero_batt, {}) if zero_batt else {}
    versus = [
        ("sequential", "x_sequential", TARGET_VS_SEQUENTIAL),
        ("persistent pool", "x_pool", TARGET_VS_POOL),
        ("replaced design, fork", "x_replaced", TARGET_VS_REPLACED),
        ("replaced design, spawn", "x_replaced_spawn", TARGET_VS_REPLACED),
    ]
    checks: list[tuple[str, Any, float, str]] = []
    for what, key, goal in versus:
        checks.append((f"{dist} × {what} (steady state)", main.get(f"{key}_work"), goal, ">="))
        checks.append((f"{dist} × {what} (whole command)", main.get(f"{key}_total"), goal, ">="))
    for name in dict.fromkeys(("dist-c1", dist)):
        row = zero.get(name)
        if row is not None:
            what = f"{name} queue overhead ms/sample (zero-work batt)"
            checks.append((what, row.get("overhead_ms"), TARGET_OVERHEAD_MS, "<="))
    checks.append(
        (f"{dist} × persistent pool (steady state), issue 14", main.get("x_pool_work"), TARGET14_VS_POOL, ">=")
    )
    for name in dict.fromkeys(("dist-c1", dist)):
        row = zero.get(name)
        if row is not None:
            what = f"{name} queue overhead ms/sample (zero-work batt), issue 14"
            checks.append((what, row.get("overhead_ms"), TARGET14_OVERHEAD_MS, "<="))
    result = []
    for what, value, target, op in checks:
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        result.append({"target": what, "value": value, "goal": f"{op} {target:g}", "met": met})
    return result


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _spread(row: Mapping[str, Any], key: str) -> str:
    med, lo, hi = row[f"{key}_median"], row[f"{key}_min"], row[f"{key}_max"]
    return f"{med:.2f} ({lo:.2f}–{hi:.2f})"


def _cpu(row: Mapping[str, Any]) -> str:
    text = _f(row["cpu_ms_per_sample"], ".1f")
    cluster = row.get("cluster_cpu_ms_per_sample")
    return f"{text} ({cluster:.1f})" if cluster else text


def table(rows: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> str:
    """One batt's Markdown table."""
    head = (
        "| mode | procs | steady-state wall s, median (min–max) | whole-command wall s, median (min–max) "
        "| samples/s | × sequential | × sequential, whole command | × pool | × replaced | × replaced spawn "
        "| overhead ms/sample | CPU ms/sample: all (worker+Redis) | peak RSS MB |\n"
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    body = []
    for name in order:
        row = rows.get(name)
        if row is None:
            continue
        body.append(
            f"| {row['label']} | {row['procs']} | {_spread(row, 'work')} | {_spread(row, 'total')} "
            f"| {_f(row['samples_per_s'], '.1f')} | {_f(row['x_sequential_work'], '.2f')} "
            f"| {_f(row['x_sequential_total'], '.2f')} | {_f(row['x_pool_work'], '.2f')} "
            f"| {_f(row['x_replaced_work'], '.2f')} | {_f(row['x_replaced_spawn_work'], '.2f')} "
            f"| {_f(row['overhead_ms'], '.2f')} "
            f"| {_cpu(row)} | {row['peak_rss_mb']:.0f} |"
        )
    return head + "\n".join(body) + "\n"


FOOTER = """\
- **steady-state wall**: first sample submitted → last task aggregated. For batt-submit it is
  `wall_seconds` of its `summary.json` (starts after argument parsing, data loading, planning and the
  batt import check); for the pools, the same span inside `python -m bench.modes` (pool already
  started and warm; the replaced design's per-task pool creation *is* counted, it is the design).
- **whole-command wall**: process start → exit, measured by the harness: interpreter start, imports,
  data loading, batt import (batt-submit spawns a child that imports the batt, also in distributed
  mode), result files. Workers and Redis are long-lived and already running (not counted).
- **× sequential / × pool / × replaced**: that mode's median steady-state wall ÷ this row's (higher is
  faster); "whole command" uses whole-command walls.
- **replaced design**: for each task in turn, a fresh `ProcessPoolExecutor(3)` over that task's samples
  only. *fork* (Python 3.11's default on Linux) forks a parent that already imported the batt: the
  design's best case. *spawn* starts fresh interpreters that import the batt for every task's pool,
  as the replaced tool did with loky's `ProcessPoolExecutor` (fork + exec) when loky was installed.
- **persistent pool**: one fork `ProcessPoolExecutor` (one process per core, started and warmed
  before timing) over all samples at once, one call per sample: the ideal on one machine.
- **overhead ms/sample** = (steady-state wall − in-process loop wall ÷ P) ÷ samples × 1000, with P =
  min(processes, cores): the wall time per sample beyond perfect use of P cores on the work alone. With
  the zero-work batt the in-process term is ~0, so it is the per-sample cost of the path itself
  (for `-c 1`, the full latency of one sample through batt-submit → Redis → worker → Redis → batt-submit).
- **CPU ms/sample**: user+system CPU of every process involved, whole command included (the mode's
  process tree; for batt-queue also the worker's main and pool processes and redis-server, whose part
  is in parentheses) ÷ samples; median over repeats.
- **peak RSS**: highest sum of RSS over the same processes, sampled every 50 ms, max over repeats
  (forked processes share pages, so the sum over-counts shared memory).
- Modes run in alternation (all modes of round 1, then all of round 2, …) after an untimed warm-up
  round; every run of every mode produced the same task lines (scores, predictions, differ sums) unless
  stated below.
- Where the time of a distributed sample goes (CPU per process, idle gaps, Celery's own floor):
  `python -m bench.costs`, explained in `bench/README.md`.
"""


def markdown(report: Mapping[str, Any]) -> str:
    """The whole Markdown report: command, machine, one table per batt, targets, footnotes."""
    m = report["machine"]
    lines = [
        "# batt-queue benchmark",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gb']:.0f} GB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, Celery {m['celery']}, kombu {m['kombu']}, redis-py {m['redis_py']}, "
        f"{m['redis_server']}  ",
        f"Repeats: {report['repeats']} timed (+{report['warmup']} warm-up) per mode, in alternation; medians reported.",
        "",
    ]
    for batt in report["batts"]:
        info = batt
        lines.append(f"## {info['label']}: `{info['ref']}`")
        lines.append("")
        extra = f", {info['candidates']} candidates" if info.get("candidates") else ""
        lines.append(
            f"{info['tasks']} tasks of {report['data']} {report['split']} ({info['selection']}), "
            f"{info['samples']} samples{extra}; in-process cost {info['inproc_ms']} ms/sample."
        )
        lines.append("")
        rows = report["stats"][info["label"]]
        loads = [r["load_median"] for r in rows.values() if r.get("load_median") is not None]
        if loads:
            lines.append(
                f"1-minute load average at the end of the timed runs: median {statistics.median(loads):.1f}, "
                f"highest mode median {max(loads):.1f} ({report['machine']['cores']} cores)."
            )
            lines.append("")
        lines.append(table(rows, report["mode_order"]))
    lines.append("## Targets (batt-queue with one worker process per core, main batt)")
    lines.append("")
    lines.append("| target | measured | goal | met |")
    lines.append("|---|--:|--:|:-:|")
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {_f(t['value'], '.2f')} | {t['goal']} | {met} |")
    lines.append("")
    lines.append("## How to read the tables")
    lines.append("")
    lines.append(FOOTER)
    if report.get("incidents"):
        lines.append("**Incidents** (a worker or Redis gone, e.g. killed by another job on the machine; the")
        lines.append("cluster was replaced, warmed up untimed, and the run redone):")
        lines.append("")
        lines += [f"- {x}" for x in report["incidents"]]
        lines.append("")
    if report["mismatches"]:
        lines.append("**Score mismatches:**")
        lines.append("")
        lines += [f"- {x}" for x in report["mismatches"]]
        lines.append("")
    return "\n".join(lines)
