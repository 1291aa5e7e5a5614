"""Smoke run of the benchmark harness (``python -m bench.run``) at tiny sizes.

Every mode (batt-submit --local, the replaced per-task pools with fork and spawn, the persistent
pool, batt-queue on a real Redis and real workers with -c 1 and -c 2, the in-process loop) runs the
built-in battery and the zero-work batt once (spawn: built-in only); all of them must produce
identical task lines, and the JSON and Markdown reports must be written. Timings are not asserted:
the full run measures them, not the test suite.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MODES = {"sequential", "replaced", "pool", "dist-c1", "dist-c2", "inproc"}
MAIN_ONLY = {"replaced-spawn"}  # fresh interpreters per task: not run on the zero-work batt


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_every_mode_scores_identically(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "bench.run", "--tasks", "2", "--zero-tasks", "2", "--repeats", "1", "--warmup", "0"]
    cmd += ["--concurrency", "1,2", "--cores", "2", "--out", str(out), "-q"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, f"bench exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"

    report = json.loads((out / "latest.json").read_text())
    assert report["mismatches"] == []
    assert len(report["batts"]) == 2
    for batt in report["batts"]:
        runs = [m for m in report["measurements"] if m["batt"] == batt["label"]]
        modes = MODES | MAIN_ONLY if batt["label"] == "main batt" else MODES
        assert {m["mode"] for m in runs} == modes, batt["label"]
        assert len({m["digest"] for m in runs}) == 1, f"{batt['label']}: modes disagree on scores"
        assert all(m["samples"] == batt["samples"] > 0 for m in runs)
        assert all(m["wall_work"] > 0 and m["wall_total"] >= m["wall_work"] for m in runs)
        assert all(m["peak_rss_bytes"] > 0 for m in runs)
        assert set(report["stats"][batt["label"]]) == modes

    stamped = list(out.glob("bench-*.json"))
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == report
    text = (out / "latest.md").read_text()
    assert (out / stamped[0].with_suffix(".md").name).read_text() == text
    labels = ("(1) batt-submit --local", "(2) replaced design", "(2s) replaced", "(3) persistent", "worker -c 2")
    for label in labels:
        assert label in text
    assert "## Targets" in text


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_cost_breakdown_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench.costs", "--variants", "configured", "--payloads", "noop,zero"]
    cmd += ["--rounds", "1", "--zero-tasks", "4", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"bench.costs exited {done.returncode}:\n{done.stderr[-4000:]}"

    (report,) = tmp_path.glob("costs-*.json")
    data = json.loads(report.read_text())
    assert [(r["variant"], r["payload"]) for r in data["rows"]] == [("configured", "noop"), ("configured", "zero")]
    for row in data["rows"]:
        assert row["samples"] > 0 and row["wall_ms"] > 0
        # CPU times tick at 10 ms, so a tiny run may show 0 for one process, never for all of them.
        parts = [row[k] for k in ("producer_ms", "main_ms", "pool_ms", "redis_ms")]
        assert all(p >= 0 for p in parts) and sum(parts) > 0
        assert row["total_cpu_ms"] == pytest.approx(sum(parts))
        assert row["inside_ms"] is not None, "the worker log names no finished task"
    assert set(data["interval_check"]) == {"interval=0.5", "interval=0"}
    assert all(v > 0 for v in data["interval_check"].values())
    assert report.with_suffix(".md").read_text().startswith("Per-sample costs")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_worker_killed_from_outside_is_replaced(tmp_path: Path) -> None:
    """Another job on the machine stopping our worker must cost a restart, not a hung or failed benchmark."""
    sys.path.insert(0, str(ROOT))
    from bench.run import Bench, build_parser

    args = build_parser().parse_args(
        ["--tasks", "1", "--zero-tasks", "0", "--repeats", "1", "--modes", "dist", "--concurrency", "1"]
        + ["--out", str(tmp_path), "--run-timeout", "100", "-q"]
    )
    args.command = "test"
    bench = Bench(args)
    (batt,) = bench.batts()
    try:
        bench.start_clusters()
        (mode,) = bench.modes
        first = bench.measure(mode, batt["label"], batt["ref"], batt["ids_file"], 1)
        worker = bench.clusters[1][1]
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)  # the worker this test's harness started
        worker.proc.wait(30)
        second = bench.measure(mode, batt["label"], batt["ref"], batt["ids_file"], 2)
    finally:
        bench.stop_clusters()
    assert len(bench.incidents) == 1 and "worker -c 1 exited" in bench.incidents[0]
    assert second.digest == first.digest and bench.mismatches == []
    assert second.samples == first.samples > 0
