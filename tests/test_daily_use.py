"""Daily use of ``batt-submit`` (issue 14), without a broker: failures you can see (first-of-kind lines,
``errors.log``, top kinds, ``--max-errors``, the same-error early stop), script-friendly output (``-q``,
``--json``, ``--version``, ``--help``), result files that follow the umask, local runs that resume, and
the messages that were wrong."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from banner_server import banner_server
from rich.console import Console
from test_cli_local import BATTS, ROOT, cli_cmd, cli_env, default_sigint, read_run, run_cli, same_task, wait_for
from test_cli_local import run_dir as only_run
from test_cli_local import write_tasks as write_data

from batt_tasks.scoring import TRACEBACK_MAX_CHARS, bound_size, failed_sample, traceback_text
from producer.progress import RunProgress, summary_table

BROKEN = str(BATTS / "broken.py")


def tasks(folder: Path, n: int, prefix: str = "t", n_train: int = 2) -> Path:
    """``n`` tasks of ``n_train`` + 1 samples each."""
    return write_data(folder, {f"{prefix}{i:04d}": same_task([[i % 10]], n_train=n_train) for i in range(n)})


# ----------------------------------------------------------------------------------- failures you can see


def test_each_kind_of_error_is_announced_once_logged_with_traceback_and_counted(tmp_path: Path) -> None:
    data = write_data(
        tmp_path / "data",
        {
            **{f"boom{i:04d}": same_task([[i % 10]]) for i in range(3)},  # ValueError, one message per task
            **{f"okay{i:04d}": same_task([[i % 10]]) for i in range(2)},
        },
    )
    out = tmp_path / "out"
    done = run_cli("--data", str(data), "-b", str(BATTS / "raises.py"), "--out", str(out))
    assert done.returncode == 1, done.stderr
    announced = [line for line in done.stderr.splitlines() if line.startswith("error ")]
    # one line per distinct message (each boom task has its own), naming the first sample of that kind
    assert sorted(announced) == [
        f"error boom{i:04d} train[0]: ValueError: boom on purpose in boom{i:04d}" for i in range(3)
    ], done.stderr
    log = (only_run(out) / "errors.log").read_text(encoding="utf-8")
    assert log.count("Traceback (most recent call last)") == 3
    assert 'raises.py", line' in log and "raise ValueError" in log
    _, _, summary = read_run(out)
    assert summary["errors"] == 6
    assert {k["error"]: k["count"] for k in summary["error_kinds"]} == {
        f"ValueError: boom on purpose in boom{i:04d}": 2 for i in range(3)
    }
    assert summary["error_kinds"][0]["first"].endswith("train[0]")
    assert "error ×2" in done.stdout  # the summary table lists the top kinds


def test_max_errors_stops_the_run_and_keeps_finished_tasks(tmp_path: Path) -> None:
    data = write_data(
        tmp_path / "data",
        {"a-ok": same_task([[1]]), **{f"boom{i:04d}": same_task([[i % 10]], n_train=3) for i in range(6)}},
    )
    out = tmp_path / "out"
    done = run_cli("--data", str(data), "-b", str(BATTS / "raises.py"), "--max-errors", "5", "--out", str(out))
    assert done.returncode == 1, done.stderr
    results, _, summary = read_run(out)
    assert summary["errors"] == 5 and summary["samples_done"] == 2 + 5 < summary["samples"]
    assert summary["stopped"].startswith("--max-errors 5")
    assert "a-ok" in results  # finished before the stop, kept
    assert "stopped: --max-errors 5" in done.stderr and "continue with: batt-submit --resume" in done.stderr


def test_a_batt_broken_everywhere_stops_after_twenty_samples(tmp_path: Path) -> None:
    data = tasks(tmp_path / "data", 12)  # 36 samples
    out = tmp_path / "out"
    done = run_cli("--data", str(data), "-b", BROKEN, "--out", str(out))
    assert done.returncode == 1, done.stderr
    _, _, summary = read_run(out)
    assert summary["samples_done"] == 20 and summary["samples"] == 36
    assert "the first 20 samples all failed with the same error (ZeroDivisionError: division by zero)" in done.stderr
    assert "--max-errors 0" in done.stderr
    # the traceback names the frame where it happened, which the one-line message does not
    assert "in _ratio" in (only_run(out) / "errors.log").read_text(encoding="utf-8")
    # --max-errors 0: every sample runs
    out0 = tmp_path / "out0"
    again = run_cli("--data", str(data), "-b", BROKEN, "--max-errors", "0", "--out", str(out0))
    assert again.returncode == 1
    assert read_run(out0)[2]["samples_done"] == 36


def test_summary_table_without_successes_and_with_one_precision() -> None:
    base = {
        "run_id": "r",
        "mode": "local",
        "tasks_done": 1,
        "tasks": 1,
        "samples_done": 2,
        "samples": 2,
        "solved": 0,
        "tasks_scored": 1,
        "timeouts": 0,
        "errors": 2,
        "wall_seconds": 1.0,
        "samples_per_second": 2.0,
        "dir": "/x",
    }

    def render(summary: dict[str, object]) -> str:
        console = Console(file=io.StringIO(), width=200)
        console.print(summary_table(summary))
        return console.file.getvalue()  # type: ignore[attr-defined]

    none = render({**base, "sample_ms": {"median": None, "p95": None}})
    assert "None" not in none and "no sample succeeded" in none
    mixed = render({**base, "sample_ms": {"median": 72.3, "p95": 274.677}})
    assert "median 72.3 ms, p95 274.7 ms" in mixed


def test_progress_time_columns_are_labelled() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    with RunProgress(2, 1, quiet=False, console=console) as progress:
        progress.sample({"status": "ok"})
        progress.sample({"status": "ok"})
    text = console.file.getvalue()  # type: ignore[attr-defined]
    last = [line for line in text.splitlines() if "samples" in line][-1]
    assert "elapsed" in last and "left" in last, last


def test_traceback_is_bounded_and_dropped_before_the_result_is_refused() -> None:
    try:
        raise ValueError("x" * (3 * TRACEBACK_MAX_CHARS))
    except ValueError as exc:
        text = traceback_text(exc)
    assert len(text) <= TRACEBACK_MAX_CHARS and text.endswith("x\n")
    result = failed_sample("t", "train", 0, "error", "ValueError: x", True) | {"traceback": "y" * 3000}
    bounded = bound_size(result, 2048)
    assert bounded["error"] == "ValueError: x" and "traceback" not in bounded


# ------------------------------------------------------------------------------------ scripts and pipelines


def test_quiet_prints_only_the_run_directory_even_on_failure(tmp_path: Path) -> None:
    data = tasks(tmp_path / "data", 2)
    out = tmp_path / "out"
    done = run_cli("--data", str(data), "-b", BROKEN, "-q", "--out", str(out))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [str(only_run(out))], done.stdout
    assert "error t0000 train[0]: ZeroDivisionError" in done.stderr  # errors still on stderr


def test_json_prints_the_summary_on_stdout(tmp_path: Path) -> None:
    data = tasks(tmp_path / "data", 2)
    out = tmp_path / "out"
    done = run_cli("--data", str(data), "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == read_run(out)[2]
    assert printed["tasks_done"] == 2


def test_version_and_help_epilog() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("batt-submit 0."), version.stdout
    text = run_cli("--help").stdout
    tail = text[text.index("environment") :]
    for var in ("BATT_BROKER_URL", "BATT_RESULT_BACKEND", "BATT_REQUIRE_BROKER", "BATT_TASK_EVENTS"):
        assert var in tail
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {code}" in tail, tail


@pytest.mark.parametrize("extra", [("-c", "2"), ("-s", "1")])
def test_ids_with_count_or_start_is_a_usage_error(tmp_path: Path, extra: tuple[str, ...]) -> None:
    done = run_cli("-i", "007bbfb7", *extra, "--out", str(tmp_path))
    assert done.returncode == 2
    assert "-i/--ids" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_result_files_follow_the_umask(tmp_path: Path) -> None:
    data = tasks(tmp_path / "data", 2)
    out = tmp_path / "out"
    done = subprocess.run(
        cli_cmd("--data", str(data), "-b", BROKEN, "--out", str(out)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),
        check=False,
    )
    assert done.returncode == 1, done.stderr
    folder = only_run(out)
    names = {"results.jsonl", "submission.json", "summary.json", "errors.log", "plan.json"}
    assert names <= {p.name for p in folder.iterdir()}
    for name in names:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


# ------------------------------------------------------------------------------------- local runs resume


def test_interrupted_local_run_resumes_without_running_finished_tasks_again(tmp_path: Path) -> None:
    data = tasks(tmp_path / "data", 6)  # 6 tasks × 3 samples × 2 calls × 0.2 s
    out = tmp_path / "out"
    calls = tmp_path / "calls.txt"
    env = dict(cli_env(), BATT_TEST_CALLS=str(calls))
    args = ("--data", str(data), "-b", str(BATTS / "counting.py"), "--out", str(out))
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            cli_cmd(*args),
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    try:
        wait_for(
            lambda: any(p.read_text().count("\n") >= 1 for p in out.glob("*/results.jsonl")), 60, "a first task line"
        )
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    stderr = (tmp_path / "stderr.txt").read_text()
    folder = only_run(out)
    hint = f"continue with: batt-submit --resume {folder.name} --out {out}"
    assert hint in stderr, stderr
    first, _, _ = read_run(out)
    assert 1 <= len(first) < 6

    status = run_cli("--status", folder.name, "--out", str(out))
    assert status.returncode == 0, status.stderr
    assert f"{len(first)}/6 tasks finished" in status.stdout and "continue with" in status.stdout

    calls.write_text("")
    resumed = subprocess.run(
        [sys.executable, "-m", "producer.cli", "--resume", folder.name, "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == str(folder)
    results, _, summary = read_run(out)
    assert sorted(results) == [f"t{i:04d}" for i in range(6)]
    again = set(calls.read_text().split())
    assert again and not again & set(first), (again, sorted(first))  # finished tasks were not run again
    assert summary["tasks_done"] == 6 and summary["samples_done"] == 18
    done_status = run_cli("--status", folder.name, "--out", str(out))
    assert "6/6 tasks finished" in done_status.stdout and "complete" in done_status.stdout


# ------------------------------------------------------------------------------------------------- messages


@pytest.fixture
def ssh_banner_port() -> Iterator[int]:
    """A TCP port where something that is not Redis answers (an SSH server's banner)."""
    with banner_server(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n") as port:
        yield port


def test_broker_url_answered_by_another_service_is_one_line(tmp_path: Path, ssh_banner_port: int) -> None:
    url = f"redis://127.0.0.1:{ssh_banner_port}/0"
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "-c", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(cli_env(), BATT_BROKER_URL=url),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert url in lines[0] and "not Redis" in lines[0] and "SSH-2.0-OpenSSH" in lines[0]


def test_api_run_stopped_by_max_errors_ends_its_iteration(tmp_path: Path) -> None:
    from producer import RunOptions, load_tasks, score_batt

    loaded = load_tasks(str(tasks(tmp_path / "data", 4)), "train")
    with score_batt(RunOptions(tasks=loaded, batt=BROKEN, out=None, quiet=True, mode="local", max_errors=2)) as run:
        results = list(run)
    assert results == [] and run.summary is not None
    assert run.summary["stopped"] == "--max-errors 2: 2 samples failed"
    assert run.summary["interrupted"] is False and run.summary["errors"] == 2
