"""The HTML report: grid drawing, the builder on small hand-made runs, comparison, ``batt-report`` and
``batt-submit --report`` (also after an interrupt)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batt_tasks.grids import to_text
from batt_tasks.scoring import aggregate_task
from producer.report import compare, load_run, write_report
from producer.report.cli import main as report_main
from producer.report.grids import decode_runs, grid_svg
from producer.report.html import build_html
from producer.report.load import load_run_tasks
from producer.report.stats import (
    ERRORED,
    SOLVED,
    TRAIN_PERFECT,
    UNSCORED,
    candidate_stats,
    histogram,
    outcome,
    sample_costs,
)
from tests.test_cli_local import BATTS, ROOT, cli_cmd, cli_env, default_sigint, same_task, wait_for, write_tasks

NASTY_ID = "t<script>&\"'x"
NASTY_CANDIDATE = "cand<img src=x>"
NASTY_MESSAGE = "ValueError: <b>bad</b> & 'worse' \"quoted\""

A = [[1, 2], [3, 4]]
B = [[1, 2], [3, 0]]


# ------------------------------------------------------------------------------------------------ helpers


def sample(
    kind: str,
    index: int,
    outputs: list[tuple[list[list[int]], list[str]]],
    matched: list[str],
    scored: bool = True,
    status: str = "ok",
    error: str | None = None,
) -> dict[str, Any]:
    """One sample result in the scoring core's shape."""
    return {
        "task_id": "x",
        "kind": kind,
        "index": index,
        "status": status,
        "error": error,
        "scored": scored,
        "candidates": len({c for _, ids in outputs for c in ids}),
        "matched": matched,
        "differ": [],
        "outputs": [[to_text(tuple(map(tuple, g))), ids] for g, ids in outputs],
        "seconds": 0.01 * (index + 1),
    }


def make_run(folder: Path, lines: list[dict[str, Any]], data: str | None, summary: bool = True) -> Path:
    """A run directory with these task lines, and a summary naming ``data``."""
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    if summary:
        (folder / "summary.json").write_text(
            json.dumps(
                {
                    "run_id": folder.name,
                    "mode": "local",
                    "options": {"data": data, "split": "train", "batt": "b.py", "timeout": 5.0},
                    "tasks": len(lines),
                    "tasks_done": len(lines),
                    "samples": 9,
                    "samples_done": 9,
                    "errors": sum(t["errors"] for t in lines),
                    "timeouts": 0,
                    "tasks_scored": sum(t["solved"] is not None for t in lines),
                    "solved": sum(bool(t["solved"]) for t in lines),
                    "wall_seconds": 1.5,
                }
            ),
            encoding="utf-8",
        )
    return folder


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A run over a data directory: a solved task with a nasty id, an errored task, a hidden-output task, and a
    train-perfect task whose attempt differs from the expected output in one cell."""
    data = write_tasks(
        tmp_path / "data",
        {
            NASTY_ID: {"train": [{"input": A, "output": A}], "test": [{"input": A, "output": A}]},
            "err": {"train": [{"input": A, "output": A}], "test": [{"input": A, "output": A}]},
            "hidden": {"train": [{"input": A, "output": A}], "test": [{"input": A}]},
            "near": {"train": [{"input": A, "output": A}], "test": [{"input": A, "output": A}]},
        },
    )
    lines = [
        aggregate_task(
            NASTY_ID,
            [sample("train", 0, [], [NASTY_CANDIDATE]), sample("test", 0, [(A, [NASTY_CANDIDATE])], [NASTY_CANDIDATE])],
        ),
        aggregate_task(
            "err",
            [sample("train", 0, [], []), sample("test", 0, [], [], status="error", error=NASTY_MESSAGE)],
        ),
        aggregate_task("hidden", [sample("train", 0, [], ["id"]), sample("test", 0, [(B, ["id"])], [], scored=False)]),
        aggregate_task("near", [sample("train", 0, [], ["id"]), sample("test", 0, [(B, ["id"])], [])]),
    ]
    return make_run(tmp_path / "runs" / "run-a", lines, str(data))


def section(page: str, task_id: str) -> str:
    """The HTML of one task's detail section."""
    match = re.search(
        r'<section class="task" id="task-\d+" data-task="' + re.escape(task_id) + '">(.*?)</section>', page, re.S
    )
    assert match, f"no section for {task_id}"
    return match.group(1)


# ------------------------------------------------------------------------------------------------ grids


def test_grids_draw_every_cell_in_its_colour() -> None:
    rng = random.Random(7)
    for _ in range(200):
        rows, cols = rng.randint(1, 30), rng.randint(1, 30)
        grid = [[rng.choice([0, 0, 0, rng.randint(0, 9)]) for _ in range(cols)] for _ in range(rows)]
        svg = grid_svg(grid)
        assert decode_runs(svg) == grid
        assert f'data-rows="{rows}" data-cols="{cols}"' in svg


def test_cells_that_differ_from_the_expected_grid_are_crossed() -> None:
    svg = grid_svg(B, A)
    assert svg.count("l.5 .5m0 -.5l-.5 .5") == 2  # one cross drawn twice (halo and line) for the one differing cell
    assert "M1.25 1.25" in svg  # at row 1, column 1
    assert 'class="dx"' not in grid_svg(A, A) and 'class="dx"' not in grid_svg(A, [[1]])  # equal, or other shape


# ------------------------------------------------------------------------------------------------ the page


def test_page_escapes_ids_candidates_and_messages(small: Path) -> None:
    run = load_run(small)
    tasks, note = load_run_tasks(run)
    assert note is None and set(tasks) == set(run.lines)
    page = build_html(run, tasks, note)
    for raw in (NASTY_ID, NASTY_CANDIDATE, "<b>bad</b>"):
        assert raw not in page
    assert "t&lt;script&gt;&amp;&quot;&#x27;x" in page
    assert "cand&lt;img src=x&gt;" in page
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; &amp; &#x27;worse&#x27; &quot;quoted&quot;" in page
    assert "<script" not in page and "<img" not in page
    assert "default-src 'none'" in page  # nothing outside the file can load


def test_page_shows_each_outcome_and_the_counts(small: Path) -> None:
    run = load_run(small)
    assert {t: outcome(line) for t, line in run.lines.items()} == {
        NASTY_ID: SOLVED,
        "err": ERRORED,
        "hidden": UNSCORED,
        "near": TRAIN_PERFECT,
    }
    page = build_html(run, *load_run_tasks(run))
    assert '<span id="solved">1</span> / <span id="scored">3</span> / <span id="total">4</span>' in page
    for group in ("g-solved", "g-errored", "g-unscored", "g-train-perfect"):
        assert f'id="{group}"' in page
    assert 'id="g-unsolved"' not in page


def test_errored_task_shows_its_failure_and_no_attempt(small: Path) -> None:
    run = load_run(small)
    part = section(build_html(run, *load_run_tasks(run)), "err")
    assert "err test[0]: error — ValueError: &lt;b&gt;bad" in part
    assert "no attempt" in part


def test_hidden_test_output_is_said_and_attempts_are_not_marked(small: Path) -> None:
    run = load_run(small)
    part = section(build_html(run, *load_run_tasks(run)), "hidden")
    assert "expected output hidden" in part
    assert 'class="dx"' not in part and "differ" not in part
    assert "attempt 1 by <code>id</code>" in part


def test_attempt_that_misses_one_cell_is_marked_with_its_candidate(small: Path) -> None:
    run = load_run(small)
    part = section(build_html(run, *load_run_tasks(run)), "near")
    assert "✗ 1 cells differ</span> by <code>id</code>" in part
    attempt = re.findall(r"<svg.*?</svg>", part)[-1]
    assert decode_runs(attempt) == B


def test_missing_data_is_said_and_everything_else_still_renders(small: Path, tmp_path: Path) -> None:
    summary = json.loads((small / "summary.json").read_text())
    summary["options"]["data"] = str(tmp_path / "gone")
    (small / "summary.json").write_text(json.dumps(summary))
    run = load_run(small)
    tasks, note = load_run_tasks(run)
    assert tasks == {} and note is not None and "is no longer available" in note and "gone" in note
    page = build_html(run, tasks, note)
    assert "is no longer available" in page
    part = section(page, "near")
    assert "train 1" not in part  # no train pairs without the data
    assert "attempt 1" in part and decode_runs(re.findall(r"<svg.*?</svg>", part)[-1]) == B  # attempts are in results


def test_run_without_a_summary_is_reported_from_its_lines(small: Path) -> None:
    (small / "summary.json").unlink()
    run = load_run(small)
    assert run.summary["solved"] == 1 and run.notes and "no summary.json" in run.notes[0]
    tasks, note = load_run_tasks(run)
    assert tasks == {} and note is not None
    page = build_html(run, tasks, note)
    assert "no summary.json" in page and '<span id="solved">1</span>' in page


# ------------------------------------------------------------------------------------------------ statistics


def test_candidate_stats_and_histogram(small: Path) -> None:
    stats = candidate_stats(load_run(small).lines.values())
    assert (stats[NASTY_CANDIDATE].solved, stats[NASTY_CANDIDATE].train_perfect, stats[NASTY_CANDIDATE].matched) == (
        1,
        1,
        2,
    )
    assert (stats["id"].solved, stats["id"].train_perfect, stats["id"].matched) == (0, 2, 2)
    assert histogram([0.0005, 0.003, 0.004, 1.5]) == [
        ("< 1 ms", 1),
        ("1 ms–2 ms", 0),
        ("2 ms–5 ms", 2),
        *[(label, 0) for label in ("5 ms–10 ms", "10 ms–20 ms", "20 ms–50 ms", "50 ms–100 ms", "100 ms–200 ms")],
        ("200 ms–500 ms", 0),
        ("500 ms–1 s", 0),
        ("1 s–2 s", 1),
    ]


def test_comparison_finds_gains_losses_and_tasks_in_one_run(tmp_path: Path) -> None:
    def line(task_id: str, solved: bool | None) -> dict[str, Any]:
        matched = ["c"] if solved else []
        return aggregate_task(task_id, [sample("train", 0, [], ["c"]), sample("test", 0, [(A, ["c"])], matched)])

    a = make_run(
        tmp_path / "a", [line("s1", True), line("s2", True), line("l1", False), line("onlya", True)], "arc-agi-1"
    )
    b = make_run(tmp_path / "b", [line("s1", False), line("s2", False), line("l1", True), line("onlyb", True)], "x")
    c = compare(load_run(a), load_run(b))
    assert (c.gained, c.lost, c.only_a, c.only_b) == (["s1", "s2"], ["l1"], ["onlya"], ["onlyb"])
    assert c.line().startswith("+2 solved, −1 lost, 1 task only in A, 1 only in B")
    assert c.warning is not None and "different data" in c.warning
    ((cid, sa, sb),) = c.candidates
    assert cid == "c" and (sa.solved, sb.solved) == (2, 1)
    page = build_html(c.a, {}, None, c)
    assert c.line().replace("'", "&#x27;") in page or "+2 solved" in page
    assert page.count('class="task cmp"') == 3


# ------------------------------------------------------------------------------------------------ commands


def test_batt_report_writes_the_file_and_prints_the_comparison(small: Path, tmp_path: Path, capsys: Any) -> None:
    other = make_run(tmp_path / "runs" / "run-b", [], "arc-agi-1")
    target = tmp_path / "r.html"
    code = report_main(["run-a", "--against", str(other), "-o", str(target), "--out", str(small.parent)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "+0 solved, −0 lost, 4 tasks only in A, 0 only in B" in out and f"report: {target}" in out
    assert "different data" in err
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert report_main([str(small)]) == 0
    assert (small / "report.html").is_file()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["nope"], "run 'nope': neither a run directory nor a run id under --out"),
        (["RUN", "--against", "nope"], "run 'nope': neither a run directory"),
        (["RUN", "-o", "/proc/no/such/dir/r.html"], "cannot write the report"),
    ],
)
def test_batt_report_bad_input_is_one_line(small: Path, args: list[str], fragment: str, capsys: Any) -> None:
    args = [str(small) if a == "RUN" else a for a in args]
    assert report_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("batt-report: error: ") and fragment in err, err


def test_batt_report_on_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "producer.report.cli", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and "holds no results.jsonl or summary.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_submit_report_after_an_interrupt_shows_what_finished(tmp_path: Path) -> None:
    data = write_tasks(tmp_path / "data", {f"slow{n:04d}": same_task([[n % 10]], n_train=2) for n in range(6)})
    out = tmp_path / "out"
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            cli_cmd("--data", str(data), "-b", str(BATTS / "slow.py"), "-t", "10", "--out", str(out), "--report"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
            env=cli_env(),
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    try:
        wait_for(lambda: any(p.read_text().count("\n") for p in out.glob("*/results.jsonl")), 60, "a first task line")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    (folder,) = out.iterdir()
    done = len((folder / "results.jsonl").read_text().splitlines())
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert f"{done} of 6 (interrupted)" in page
    assert page.count('<section class="task"') == done
    assert f"report: {folder / 'report.html'}" in (tmp_path / "stderr.txt").read_text()


def test_report_of_a_real_run_draws_each_attempt(tmp_path: Path) -> None:
    code = subprocess.run(
        cli_cmd("-i", "0d3d703e", "25ff71a9", "--out", str(tmp_path), "--report"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=120,
    )
    assert code.returncode == 0, code.stderr
    (folder,) = tmp_path.iterdir()
    report_path = folder / "report.html"
    assert f"report: {report_path}" in code.stderr
    page = report_path.read_text(encoding="utf-8")
    lines = {json.loads(x)["task_id"]: json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()}
    for task_id, line in lines.items():
        drawn = [decode_runs(svg) for svg in re.findall(r"<svg.*?</svg>", section(page, task_id))]
        for attempts in line["predictions"]:
            for grid in attempts:
                assert grid in drawn
    # rewriting from the same files gives the same page
    assert write_report(folder).path.read_text(encoding="utf-8") == page


def test_runs_from_before_prediction_candidates_and_sample_costs_still_report(small: Path) -> None:
    raw = [json.loads(x) for x in (small / "results.jsonl").read_text().splitlines()]
    for line in raw:
        del line["prediction_candidates"], line["sample_seconds"]
    (small / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in raw))
    run = load_run(small)
    costs, exact = sample_costs(run.lines.values())
    assert not exact and len(costs) == 8 and costs[0] == pytest.approx(run.lines[NASTY_ID]["seconds"] / 2)
    page = build_html(run, *load_run_tasks(run))
    assert "predates per-sample timings" in page
    assert "attempt 1 <span" in section(page, "near") and "by <code>" not in section(page, "near")


def test_api_writes_the_report_and_compares_runs(tmp_path: Path) -> None:
    from producer import RunOptions, UsageError, score_batt

    data = write_tasks(tmp_path / "data", {"same0001": same_task([[1, 2]]), "same0002": same_task([[3]])})
    opts = RunOptions(data=str(data), batt=str(BATTS / "slow.py"), out=str(tmp_path / "runs"), mode="local", quiet=True)
    with score_batt(opts, report=True) as first:
        assert len(list(first)) == 2
    assert first.dir is not None and (first.dir / "report.html").is_file()  # RunOptions.report, as --report
    second = score_batt(opts, ids=["same0001"])
    assert [r.task_id for r in second] == ["same0001"]
    report = second.report(against=first.run_id)  # a run id beside this run
    assert report.path == second.dir / f"report-vs-{first.run_id}.html"
    assert report.comparison is not None
    assert report.comparison.line().startswith("+0 solved, −0 lost, 0 tasks only in A, 1 only in B")
    assert "1 → 1 solved of 1 shared tasks" in report.comparison.line()
    with pytest.raises(UsageError, match="out=None"):
        score_batt(opts, out=None).report()


def test_a_400_task_report_stays_under_10_mb(tmp_path: Path) -> None:
    """Size, not time (times are benchmarks: bench/report_html.py): every ARC-AGI-1 training task with two
    attempts per test input, the second differing from the expected output in every cell."""
    from producer.data import load_tasks

    tasks = load_tasks("arc-agi-1", "train")
    lines = []
    for tid, task in tasks.items():
        expected = [[list(row) for row in (out or inp)] for inp, out in task.test]
        wrong = [[[(c + 1) % 10 for c in row] for row in grid] for grid in expected]
        n = len(task.train) + len(task.test)
        lines.append(
            {
                "task_id": tid,
                "samples": {"train": len(task.train), "test": len(task.test)},
                **{"ok": n, "errors": 0, "timeouts": 0, "failures": [], "candidates": 500},
                "train_scores": {f"cand_{k}": 1000 * len(task.train) for k in range(5)},
                "test_scores": {"cand_0": 1000 * len(task.test)},
                "train_perfect": [f"cand_{k}" for k in range(5)],
                "predictions": [[good, bad] for good, bad in zip(expected, wrong, strict=True)],
                "prediction_candidates": [["cand_0", "cand_1"] for _ in expected],
                **{"solved": True, "seconds": 0.1 * n, "sample_seconds": [0.1] * n},
            }
        )
    run = load_run(make_run(tmp_path / "big", lines, "arc-agi-1"))
    page = build_html(run, tasks)
    assert len(tasks) == 400 and page.count('<section class="task"') == 400
    assert len(page.encode()) < 10_000_000, len(page.encode())
