"""Regression: the training tasks the battery solves are pinned, and the evaluator works.

``solved_train.json`` is the list ``python -m bench.battery_eval --split train --solved-out ...`` wrote.
Only the pinned tasks are re-run here (the whole split takes too long for the test suite), so a change
that loses a solved task fails this test; after a change that gains tasks, regenerate the pin with

    python -m bench.battery_eval --split train --jobs 2 --solved-out tests/battery/solved_train.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` does not put the repository root on sys.path; bench/ needs it
    sys.path.insert(0, str(ROOT))

from bench import battery_eval  # noqa: E402

PIN = Path(__file__).with_name("solved_train.json")


def test_pinned_training_tasks_are_still_solved() -> None:
    pinned = json.loads(PIN.read_text())
    assert len(pinned) >= 30, "the floor is 30 solved training tasks"
    summary = battery_eval.run("train", tasks=pinned, jobs=2)
    lost = sorted(set(pinned) - set(summary["solved_ids"]))
    assert not lost, f"no longer solved: {lost}"
    assert summary["solved"] == len(pinned)
    assert summary["sample_errors"] == 0


def test_evaluator_cli_reports_and_writes_solved_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "solved.json"
    code = battery_eval.main(["--split", "train", "--tasks", "0d3d703e,00d62c1b,1b2d62fb", "--solved-out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "solved 3/3 tasks" in printed
    assert "median" in printed and "p95" in printed and "peak RSS" in printed
    assert json.loads(out.read_text()) == ["00d62c1b", "0d3d703e", "1b2d62fb"]


def test_evaluator_rejects_unknown_task_ids(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        battery_eval.main(["--split", "train", "--tasks", "0d3d703e,nottask0"])
    assert exit_info.value.code == 2
    assert "nottask0" in capsys.readouterr().err


def test_percentile() -> None:
    assert battery_eval.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert battery_eval.percentile([], 0.95) == 0.0
    assert battery_eval.percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
