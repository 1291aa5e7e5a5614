"""The Python API (``producer.score_batt``): local runs in this process, distributed runs in a subprocess
against a real redis-server and a real prefork worker (a process's Celery app reads its broker once).

Results come back as TaskResult records in completion order; the files are the CLI's; errors are the
CLI's one-line messages; leaving a run early cancels what is pending; a diff call past ``-t`` keeps the
solve call's exact-match credit; both differ sums come back exactly; 100 runs in one process leak nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from workers import ROOT, Worker, batt_env, run_submit

from batt_tasks.scoring import TIMING_FIELDS
from producer import BattLoadError, RunOptions, TaskResult, UsageError, load_tasks, score_batt
from producer.local import shutdown

PROBE = str(ROOT / "tests" / "batts" / "api_probe.py")
RAISES = str(ROOT / "tests" / "batts" / "raises.py")


def write_tasks(folder: Path, ids: list[str]) -> Path:
    """Tasks whose answer is the input: train [[1, n]], [[2, n]] and test [[3, n]], n the id's last digit."""
    folder.mkdir(parents=True, exist_ok=True)
    for tid in ids:
        n = int(tid[-1])
        grids = [[[1, n]], [[2, n]], [[3, n]]]
        raw = {
            "train": [{"input": g, "output": g} for g in grids[:2]],
            "test": [{"input": grids[2], "output": grids[2]}],
        }
        (folder / f"{tid}.json").write_text(json.dumps(raw), encoding="utf-8")
    return folder


def run_files(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(results.jsonl lines without timings, submission, summary) of one run directory."""
    lines = [json.loads(raw) for raw in (folder / "results.jsonl").read_text().splitlines()]
    for line in lines:
        for timing in TIMING_FIELDS:
            line.pop(timing)
    submission = json.loads((folder / "submission.json").read_text())
    return lines, submission, json.loads((folder / "summary.json").read_text())


def late_line(tid: str) -> dict[str, Any]:
    """The expected line of a ``late*`` task of :func:`write_tasks` scored by the probe with ``-t 1``: its
    train[0] diff call times out; the solve call's match, programs and differ_solve rows stand."""
    n = int(tid[-1])
    return {
        "task_id": tid,
        "samples": {"train": 2, "test": 1},
        "ok": 2,
        "errors": 0,
        "timeouts": 1,
        "failures": [
            {"sample": f"{tid} train[0]", "status": "timeout", "error": "diff call: time limit of 1s exceeded"}
        ],
        "candidates": 2,
        "programs": {"blank": {"t_n": 12, "evo": True}, "identity": {"t_n": 11, "evo": False}},
        "train_scores": {"identity": 2000},
        "test_scores": {"identity": 1000},
        "train_perfect": ["identity"],
        "differ_solve": {"blank": {"solve_only": 9}, "identity": {"size": 3}},
        "differ": {"identity": {"diff_only": 10, "size": 2}},
        "predictions": [[[[3, n]], [[0, 0]]]],
        "prediction_candidates": [["identity", "blank"]],
        "solved": True,
    }


@pytest.fixture(autouse=True)
def _fresh_batt_process() -> Iterator[None]:
    """Each test starts without a kept local batt process and leaves none behind."""
    shutdown()
    yield
    shutdown()


# ----------------------------------------------------------------------------------------------- local


def test_local_api_yields_records_and_writes_the_clis_files(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", ["late0001", "late0002"])
    opts = RunOptions(data=str(data), batt=PROBE, timeout=1, out=str(tmp_path / "api"), mode="local", quiet=True)
    with score_batt(opts) as run:
        records = list(run)
    assert all(isinstance(r, TaskResult) for r in records)
    assert [r.task_id for r in records] == ["late0001", "late0002"]  # local mode completes in order
    for r in records:
        line = r.as_line()
        assert line.pop("seconds") > 0
        assert len(line.pop("sample_seconds")) == 3
        assert line == late_line(r.task_id)
    assert run.summary is not None and run.summary["timeouts"] == 2 and run.summary["solved"] == 2
    assert run.dir is not None and run.dir.parent == tmp_path / "api"

    proc = run_submit(
        dict(batt_env("redis://127.0.0.1:9")),
        *("--local", "--data", str(data), "-b", PROBE, "-t", "1", "-q", "--out", str(tmp_path / "cli")),
    )
    assert proc.returncode == 1, proc.stderr  # complete, with (diff-call) timeouts
    (cli_dir,) = list((tmp_path / "cli").iterdir())
    api_lines, api_sub, api_summary = run_files(run.dir)
    cli_lines, cli_sub, cli_summary = run_files(cli_dir)
    assert api_lines == cli_lines == [late_line("late0001"), late_line("late0002")]
    assert api_sub == cli_sub
    assert api_summary["options"] == cli_summary["options"]
    for key in ("tasks", "samples", "ok", "timeouts", "errors", "solved", "solved_ids", "mode", "interrupted"):
        assert api_summary[key] == cli_summary[key], key


def test_out_none_writes_no_file_and_reuses_loaded_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_tasks(tmp_path / "data", ["aaaa0001", "aaaa0002"])
    tasks = load_tasks(str(data))
    for f in data.iterdir():  # the runs below must not read the data again
        f.unlink()
    for _ in range(3):
        with score_batt(tasks=tasks, batt=RAISES, out=None, mode="local", quiet=True) as run:
            records = run.results()
        assert sorted(r.task_id for r in records) == ["aaaa0001", "aaaa0002"]
        assert all(r.solved for r in records) and records[0].ranking() == ["identity"]
        assert run.dir is None and run.summary is not None and run.summary["dir"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no runs/ directory, no file at all


@pytest.mark.parametrize(
    ("options", "error", "cli_args"),
    [
        ({"ids": ["007bbfb8"]}, UsageError, ["-i", "007bbfb8"]),
        ({"count": 401}, UsageError, ["-c", "401"]),
        ({"data": "no/such/place"}, UsageError, ["--data", "no/such/place"]),
        ({"batt": "no_such_batt_module_xyz"}, BattLoadError, ["-b", "no_such_batt_module_xyz"]),
        ({"timeout": 0}, UsageError, None),
        ({"mode": "cloud"}, UsageError, None),
    ],
)
def test_errors_are_exceptions_with_the_clis_one_line_messages(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], cli_args: list[str] | None
) -> None:
    with pytest.raises(error) as info:
        score_batt(RunOptions(**{"out": str(tmp_path / "out"), "mode": "local", "quiet": True, **options}))
    message = str(info.value)
    assert "\n" not in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    if cli_args is not None:
        proc = run_submit(batt_env("redis://127.0.0.1:9"), "--local", *cli_args, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"batt-submit: error: {message}"


def test_leaving_a_local_run_early_stops_it_and_keeps_what_finished(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", [f"slow{n:04d}" for n in range(4)])
    with pytest.raises(KeyboardInterrupt), score_batt(data=str(data), batt=PROBE, out=str(tmp_path), quiet=True) as run:
        for _ in run:
            raise KeyboardInterrupt  # Ctrl-C in the caller's loop body
    assert run.summary is not None
    assert run.summary["interrupted"] is True and run.summary["tasks_done"] == 1
    assert run.dir is not None
    lines, submission, summary = run_files(run.dir)
    assert [line["task_id"] for line in lines] == ["slow0000"] and list(submission) == ["slow0000"]
    assert summary["interrupted"] is True


# ----------------------------------------------------------------------------------------- distributed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One redis-server and one prefork worker (2 processes) for the module; the environment to reach them."""
    from redis_proc import RedisServer

    server = RedisServer().start()
    env = batt_env(server.url)
    worker = Worker(env, concurrency=2).start()
    try:
        yield env
    finally:
        worker.stop()
        server.cleanup()


def run_script(env: dict[str, str], code: str, *args: str, timeout: float = 300) -> Any:
    """Run ``code`` (which prints one JSON line last) in a producer process on the cluster; its value."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


API_RUN = """
import json, sys
from producer import RunOptions, score_batt
data, out, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
opts = RunOptions(data=data, batt=sys.argv[4], timeout=timeout, out=out, mode="distributed", quiet=True)
with score_batt(opts) as run:
    records = [r.as_line() for r in run]
print(json.dumps({"records": records, "dir": str(run.dir), "mode": run.mode, "summary": run.summary}))
"""


@pytest.mark.integration
def test_distributed_api_yields_in_completion_order_and_writes_the_clis_files(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    # slow0000 is submitted first but completes last: every call on it sleeps 0.7 s
    data = write_tasks(tmp_path / "data", ["slow0000", "fast0001", "fast0002"])
    got = run_script(cluster, API_RUN, str(data), str(tmp_path / "api"), "10", PROBE)
    order = [r["task_id"] for r in got["records"]]
    assert got["mode"] == "distributed" and sorted(order) == ["fast0001", "fast0002", "slow0000"]
    assert order[-1] == "slow0000", order
    lines, _, summary = run_files(Path(got["dir"]))
    assert [line["task_id"] for line in lines] == order  # results.jsonl is in completion order too
    assert summary["mode"] == "distributed" and summary["ok"] == 9

    args = ("--data", str(data), "-b", PROBE, "-t", "10", "--require-broker", "-q", "--out", str(tmp_path / "c"))
    proc = run_submit(cluster, *args)
    assert proc.returncode == 0, proc.stderr
    (cli_dir,) = list((tmp_path / "c").iterdir())
    cli_lines, cli_sub, cli_summary = run_files(cli_dir)
    api_lines, api_sub, api_summary = run_files(Path(got["dir"]))
    assert sorted(api_lines, key=lambda x: x["task_id"]) == sorted(cli_lines, key=lambda x: x["task_id"])
    assert api_sub == cli_sub and api_summary["options"] == cli_summary["options"]


@pytest.mark.integration
def test_diff_call_timeout_and_both_differ_sums_are_the_same_in_both_modes(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    data = write_tasks(tmp_path / "data", ["late0001", "late0002", "late0003"])
    got = run_script(cluster, API_RUN, str(data), str(tmp_path / "d"), "1", PROBE)
    assert got["mode"] == "distributed"
    for record in got["records"]:
        for timing in TIMING_FIELDS:
            record.pop(timing)
        assert record == late_line(record["task_id"])
    assert got["summary"]["timeouts"] == 3 and got["summary"]["solved"] == 3


LEAVE_EARLY = """
import json, sys
import redis
from batt_tasks.config import settings
from batt_tasks.sample import cancel_key
from producer import score_batt
with score_batt(data=sys.argv[1], batt=sys.argv[2], out=sys.argv[3], mode="distributed", quiet=True) as run:
    first = next(run)
backend = redis.Redis.from_url(settings().result_backend)
mark = backend.get(cancel_key(run.run_id)).decode()
print(json.dumps({"first": first.task_id, "summary": run.summary, "cancel": mark}))
"""


@pytest.mark.integration
def test_leaving_a_distributed_run_early_cancels_its_pending_samples(cluster: dict[str, str], tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", [f"slow{n:04d}" for n in range(6)])
    got = run_script(cluster, LEAVE_EARLY, str(data), PROBE, str(tmp_path / "out"))
    summary = got["summary"]
    assert got["cancel"] == "0"  # workers skip the rest of generation 0 of this run
    assert summary["interrupted"] is True and 1 <= summary["tasks_done"] < 6
    lines, _, _ = run_files(Path(summary["dir"]))
    assert got["first"] in {line["task_id"] for line in lines}


@pytest.mark.integration
def test_100_one_task_runs_in_one_process_leak_nothing(cluster: dict[str, str]) -> None:
    """bench/api_loop.py's loop against the module's worker: threads, fds and broker connections stay put."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.api_loop", "--cluster", "env", "--runs", "100", "--modes", "auto", "--json"],
        env=cluster,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ran_as"] == ["distributed"] and report["failed_runs"] == 0 and report["runs"] == 100
    before, after = report["before"], report["after"]
    assert before["connections"] >= 1  # the counts see the broker connections
    assert after["threads"] == before["threads"] and after["os_threads"] == before["os_threads"], report
    assert after["children"] == before["children"], report
    # a leak of one per run would show as +100; allow a reconnect or two
    assert after["fds"] <= before["fds"] + 2 and after["connections"] <= before["connections"] + 2, report


def test_paths_and_a_single_id_string_are_accepted(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", ["aaaa0001", "aaaa0002"])
    with score_batt(data=data, ids="aaaa0002", batt=RAISES, out=None, mode="local", quiet=True) as run:
        assert [r.task_id for r in run] == ["aaaa0002"]
    assert run.options["data"] == str(data) and run.options["ids"] == ["aaaa0002"]
    assert sorted(load_tasks([data, str(data)])) == ["aaaa0001", "aaaa0002"]
