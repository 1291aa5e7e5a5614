"""Unit tests of the pure scoring core: grids, score_sample, aggregate_task (predictions and the ARC
solved rule), differ clamping and summing, result bounding, the collector and the submission format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from batt_tasks.grids import GridError, as_grid, from_text, grid_problem, to_grid, to_json, to_text
from batt_tasks.scoring import (
    MATCH_SCORE,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_TIMEOUT,
    aggregate_task,
    bound_size,
    failed_sample,
    one_line,
    score_sample,
)
from producer.collect import Collector
from producer.results import EMPTY_ATTEMPT, submission_entry

A = ((1, 2), (3, 4))
B = ((4, 3), (2, 1))
C_ = ((0, 0), (0, 0))
D = ((5,),)
S = ((A, B),)


def batt_of(answers: dict[str, Any], differ: list[Any] | None = None, calls: list[Any] | None = None) -> Any:
    """A batt answering every input with ``answers`` (candidate id → output) and ``differ`` on the diff pass."""

    def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> Any:  # noqa: E741
        if calls is not None:
            calls.append((task_id, S, I, C, log_path))
        o = [(n, False, cid, out) for n, (cid, out) in enumerate(answers.items())]
        return o, (list(differ or []) if C is not None else [])

    return batt


# ---------------------------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "empty"),
        ([[]], "row 0 is empty"),
        ([[1, 2], [3]], "ragged"),
        ([[10]], "outside 0-9"),
        ([[-1]], "outside 0-9"),
        ([[True]], "not an int"),
        ([[1.0]], "not an int"),
        ([[0] * 31], "31 columns"),
        ([[0]] * 31, "31 rows"),
        ("12", "not a list of rows"),
        (None, "not a list of rows"),
        ([1, 2], "row 0 is int"),
        ([["1"]], "not an int"),
    ],
)
def test_grid_problem_names_what_is_wrong(value: Any, fragment: str) -> None:
    problem = grid_problem(value)
    assert problem is not None and fragment in problem
    assert as_grid(value) is None
    with pytest.raises(GridError, match=fragment):
        to_grid(value)


def test_valid_grids_become_tuples() -> None:
    assert grid_problem([[0] * 30] * 30) is None
    assert as_grid([[1, 2], [3, 4]]) == A
    assert as_grid(A) == A
    assert as_grid(np.array([[1, 2], [3, 4]])) == A
    assert to_json(A) == [[1, 2], [3, 4]]
    assert isinstance(to_grid([[9]]), tuple)


@pytest.mark.parametrize(
    "value",
    [[[True, 0]], [[1.0]], [[np.int64(3)]], [(1, 2), [3]], [[0, 10]], [[-1]], [[]], (), [[0] * 31], [[[1]]], [[{}]]],
)
def test_fast_and_slow_grid_checks_agree(value: Any) -> None:
    # the C-level fast path only ever says "valid"; every invalid value gets the cell-by-cell message
    assert grid_problem(value) is not None


def test_grid_text_form_round_trips() -> None:
    assert to_text(A) == "12|34"
    assert from_text("12|34") == [[1, 2], [3, 4]]
    big = tuple(tuple((r * c) % 10 for c in range(30)) for r in range(30))
    assert from_text(to_text(big)) == to_json(big)


@pytest.mark.parametrize("text", ["", "1a|2", "12|3", "1|", "١٢", 12])
def test_grid_text_form_rejects_what_is_not_a_grid(text: Any) -> None:
    with pytest.raises(GridError):
        from_text(text)


# ---------------------------------------------------------------------------------------- score_sample


def test_exact_match_and_candidate_list() -> None:
    calls: list[Any] = []
    batt = batt_of({"right": B, "wrong": C_, "lists": [[4, 3], [2, 1]]}, calls=calls)
    r = score_sample(batt, "t", S, A, B, "/tmp/log", kind="train", index=3)
    assert r["status"] == STATUS_OK and r["error"] is None and r["scored"] is True
    assert r["candidates"] == 3  # a count of distinct candidate ids
    assert r["matched"] == ["lists", "right"]  # a list-of-lists output equal to expected matches too
    assert r["outputs"] == []  # train samples keep no outputs
    assert (r["kind"], r["index"], r["task_id"]) == ("train", 3, "t")
    # Solve pass with C=None, then the diff pass with C=expected; both get the protocol's arguments.
    assert [c[3] for c in calls] == [None, B]
    assert all(c[:3] == ("t", S, A) and c[4] == "/tmp/log" for c in calls)
    assert r["seconds"] >= 0


def test_test_sample_keeps_distinct_outputs_with_their_candidates() -> None:
    batt = batt_of({"b1": B, "c1": C_, "b2": B})
    r = score_sample(batt, "t", S, A, B, None, kind="test", index=0)
    assert r["outputs"] == [["43|21", ["b1", "b2"]], ["00|00", ["c1"]]]
    assert r["matched"] == ["b1", "b2"]


def test_unscored_sample_runs_only_the_solve_pass() -> None:
    calls: list[Any] = []
    batt = batt_of({"b": B}, differ=[(1, "b", "d", (5,))], calls=calls)
    r = score_sample(batt, "t", S, A, None, None, kind="test", index=0)
    assert len(calls) == 1 and calls[0][3] is None
    assert r["scored"] is False and r["matched"] == [] and r["differ"] == []
    assert r["outputs"] == [[to_text(B), ["b"]]]


def test_non_grid_outputs_never_match_and_never_crash() -> None:
    weird = {
        "none": None,
        "str": "B",
        "ragged": [[4, 3], [2]],
        "colour": [[4, 3], [2, 10]],
        "bool": [[True]],
        "big": [[0] * 31],
        "dict": {"x": 1},
        "ok": B,
    }
    r = score_sample(batt_of(weird), "t", S, A, B, None, kind="test", index=0)
    assert r["status"] == STATUS_OK
    assert r["matched"] == ["ok"]
    assert r["candidates"] == len(weird)
    assert r["outputs"] == [[to_text(B), ["ok"]]]


def test_differ_scores_are_clamped_then_summed_per_candidate_and_differ() -> None:
    differ = [
        (1, "a", "d1", (700, "extra")),
        (2, "a", "d1", (600,)),  # same (candidate, differ) in one sample: 700 + 600
        (3, "a", "d2", (5000,)),  # clamped to 1000
        (4, "b", "d1", (-50,)),  # clamped to 0
        (5, "b", "d2", ("garbage",)),  # not a number: 0
        (6, None, "d3", 12),  # a bare int is accepted; candidate None becomes 'None'
        (7, "c", "d1", ()),  # empty tuple: 0
    ]
    r = score_sample(batt_of({"a": B}, differ=differ), "t", S, A, B, None)
    assert r["differ"] == [
        ["None", "d3", 12],
        ["a", "d1", 1300],
        ["a", "d2", 1000],
        ["b", "d1", 0],
        ["b", "d2", 0],
        ["c", "d1", 0],
    ]


def test_batt_exception_becomes_a_sample_error() -> None:
    def batt(*args: Any) -> Any:
        raise ZeroDivisionError("no\nway")

    r = score_sample(batt, "t", S, A, B, None)
    assert r["status"] == STATUS_ERROR
    assert r["error"] == "ZeroDivisionError: no way"  # one line
    assert r["candidates"] == 0 and r["matched"] == [] and r["outputs"] == [] and r["differ"] == []


def test_exception_in_the_diff_pass_discards_the_solve_pass() -> None:
    def batt(task_id: str, S: Any, I: Any, C: Any, log_path: Any) -> Any:  # noqa: E741
        if C is not None:
            raise KeyError("diff")
        return [(1, False, "b", B)], []

    r = score_sample(batt, "t", S, A, B, None)
    assert r["status"] == STATUS_ERROR and "KeyError" in r["error"]
    assert r["matched"] == []


@pytest.mark.parametrize(
    ("returned", "fragment"),
    [
        (None, "expected the pair (o, s)"),
        ([(1, False, "a", B)], "expected the pair (o, s)"),
        (([], [], []), "expected the pair (o, s)"),
        (("o", []), "expected a list"),
        (([(1, False, "a")], []), "expected a 4-tuple"),
        (([(1, False, "a", B)], [(1, "a", "d")]), "expected a 4-tuple"),
        (([5], []), "expected a 4-tuple"),
    ],
)
def test_protocol_violations_are_sample_errors(returned: Any, fragment: str) -> None:
    r = score_sample(lambda *a: returned, "t", S, A, B, None)
    assert r["status"] == STATUS_ERROR
    assert r["error"].startswith("BattProtocolError") and fragment in r["error"]


def test_one_line_is_bounded() -> None:
    text = one_line(ValueError("x" * 1000))
    assert len(text) == 300 and text.endswith("...") and "\n" not in text
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_bound_size_replaces_oversized_results() -> None:
    r = score_sample(batt_of({"b": B}), "t", S, A, B, None, kind="test", index=1)
    assert bound_size(r, 10**6) is r
    small = bound_size(r, 50)
    assert small["status"] == STATUS_ERROR and "result too large" in small["error"]
    assert (small["task_id"], small["kind"], small["index"], small["scored"]) == ("t", "test", 1, True)
    assert small["outputs"] == [] and small["matched"] == []


# ------------------------------------------------------------------------------------------ aggregation


def sample(
    kind: str,
    index: int,
    matched: Sequence[str] = (),
    outputs: Sequence[tuple[Any, Sequence[str]]] = (),
    candidates: Sequence[str] | None = None,
    differ: Sequence[Sequence[Any]] = (),
    scored: bool = True,
    status: str = STATUS_OK,
    seconds: float = 0.5,
) -> dict[str, Any]:
    """A sample result as score_sample makes it (JSON shapes)."""
    if candidates is None:
        candidates = sorted({c for _, ids in outputs for c in ids} | set(matched))
    return {
        "task_id": "t",
        "kind": kind,
        "index": index,
        "status": status,
        "error": None if status == STATUS_OK else f"{status} here",
        "scored": scored,
        "candidates": len(candidates),
        "matched": sorted(matched),
        "differ": [list(d) for d in differ],
        "outputs": [[to_text(g), list(ids)] for g, ids in outputs],
        "seconds": seconds,
    }


def test_scores_train_perfect_and_differ_sums() -> None:
    results = [
        sample("train", 0, matched=["a", "b"], candidates=["a", "b", "c"], differ=[["a", "d", 1000], ["b", "d", 400]]),
        sample("train", 1, matched=["a"], candidates=["a", "b", "c"], differ=[["a", "d", 1000], ["b", "d", 300]]),
        sample("test", 0, matched=["b"], outputs=[(A, ["a"]), (B, ["b", "c"])], differ=[["b", "e", 7]]),
    ]
    line = aggregate_task("t", results)
    assert line["task_id"] == "t"
    assert line["samples"] == {"train": 2, "test": 1}
    assert (line["ok"], line["errors"], line["timeouts"], line["failures"]) == (3, 0, 0, [])
    assert line["candidates"] == 3
    assert line["train_scores"] == {"a": 2 * MATCH_SCORE, "b": MATCH_SCORE}  # c scored 0: left out
    assert line["test_scores"] == {"b": MATCH_SCORE}
    assert line["train_perfect"] == ["a"]
    assert line["differ"] == {"a": {"d": 2000}, "b": {"d": 700, "e": 7}}
    # a (2000) first, then b (1000); c shares b's output so adds nothing.
    assert line["predictions"] == [[to_json(A), to_json(B)]]
    assert line["prediction_candidates"] == [["a", "b"]]  # b (1000) ranks above c (0) for output B
    assert line["solved"] is True  # B is the test output and it is attempt 2
    assert line["seconds"] == pytest.approx(1.5)
    assert len(line["sample_seconds"]) == 3 and sum(line["sample_seconds"]) == pytest.approx(1.5)
    json.dumps(line)  # the line is JSON


def test_solved_needs_the_answer_among_the_two_attempts() -> None:
    # Candidate c produced the right answer but ranks third by train score: not solved.
    results = [
        sample("train", 0, matched=["a", "b"], candidates=["a", "b", "c"]),
        sample("test", 0, matched=["c"], outputs=[(A, ["a"]), (B, ["b"]), (C_, ["c"])]),
    ]
    line = aggregate_task("t", results)
    assert line["predictions"] == [[to_json(A), to_json(B)]]
    assert line["test_scores"] == {"c": MATCH_SCORE}
    assert line["solved"] is False


def test_ties_in_train_score_are_broken_by_candidate_id() -> None:
    results = [
        sample("train", 0, candidates=["z", "m", "a"]),
        sample("test", 0, outputs=[(A, ["z"]), (B, ["m"]), (C_, ["a"])], matched=["z"]),
    ]
    line = aggregate_task("t", results)
    assert line["predictions"] == [[to_json(C_), to_json(B)]]  # a, then m; z is third
    assert line["solved"] is False


def test_predictions_are_distinct_outputs() -> None:
    # a and b give the same output: attempt 2 comes from the next candidate with a different one.
    results = [
        sample("train", 0, matched=["a", "b"], candidates=["a", "b", "c"]),
        sample("test", 0, matched=["c"], outputs=[(A, ["a", "b"]), (C_, ["c"])]),
    ]
    line = aggregate_task("t", results)
    assert line["predictions"] == [[to_json(A), to_json(C_)]]
    assert line["solved"] is True


def test_single_output_gives_one_attempt() -> None:
    line = aggregate_task("t", [sample("train", 0, candidates=["a"]), sample("test", 0, outputs=[(A, ["a"])])])
    assert line["predictions"] == [[to_json(A)]]
    assert line["solved"] is False


def test_every_test_output_must_be_solved() -> None:
    results = [
        sample("train", 0, matched=["a"]),
        sample("test", 0, matched=["a"], outputs=[(A, ["a"])]),
        sample("test", 1, matched=[], outputs=[(B, ["a"])]),
    ]
    line = aggregate_task("t", results)
    assert line["predictions"] == [[to_json(A)], [to_json(B)]]
    assert line["solved"] is False
    results[2] = sample("test", 1, matched=["a"], outputs=[(B, ["a"])])
    assert aggregate_task("t", results)["solved"] is True


def test_unknown_test_output_is_unscored() -> None:
    results = [
        sample("train", 0, matched=["a"]),
        sample("test", 0, matched=["a"], outputs=[(A, ["a"])]),
        sample("test", 1, scored=False, outputs=[(B, ["a"])]),
    ]
    line = aggregate_task("t", results)
    assert line["solved"] is None  # one unknown output makes the task unscored
    assert line["predictions"] == [[to_json(A)], [to_json(B)]]  # predictions are still made
    assert line["test_scores"] == {"a": MATCH_SCORE}


def test_no_candidate_output_means_no_attempt_and_not_solved() -> None:
    line = aggregate_task("t", [sample("train", 0), sample("test", 0, candidates=[])])
    assert line["predictions"] == [[]]
    assert line["solved"] is False
    assert line["candidates"] == 0


def test_errors_and_timeouts_are_counted_and_listed() -> None:
    results = [
        sample("train", 0, matched=["a"]),
        failed_sample("t", "train", 1, STATUS_TIMEOUT, "time limit of 1s exceeded", True),
        failed_sample("t", "test", 0, STATUS_ERROR, "ValueError: x", True),
    ]
    line = aggregate_task("t", results)
    assert (line["ok"], line["errors"], line["timeouts"]) == (1, 1, 1)
    assert line["failures"] == [
        {"sample": "t train[1]", "status": STATUS_TIMEOUT, "error": "time limit of 1s exceeded"},
        {"sample": "t test[0]", "status": STATUS_ERROR, "error": "ValueError: x"},
    ]
    assert line["train_perfect"] == []  # a train sample did not run: nobody is perfect
    assert line["predictions"] == [[]] and line["solved"] is False


def test_sample_order_does_not_matter() -> None:
    results = [
        sample("test", 1, matched=["b"], outputs=[(B, ["b"])]),
        sample("train", 1, matched=["b"]),
        sample("test", 0, matched=["a"], outputs=[(A, ["a"]), (B, ["b"])]),
        sample("train", 0, matched=["a", "b"]),
    ]
    forward = aggregate_task("t", results)
    backward = aggregate_task("t", list(reversed(results)))
    assert forward == backward
    assert forward["predictions"] == [[to_json(B), to_json(A)], [to_json(B)]]
    assert forward["solved"] is True


def test_aggregate_of_real_score_sample_results() -> None:
    batt = batt_of({"id": None, "right": B})

    def run(kind: str, index: int, inp: Any, out: Any) -> dict[str, Any]:
        return json.loads(json.dumps(score_sample(batt, "t", S, inp, out, None, kind=kind, index=index)))

    line = aggregate_task("t", [run("train", 0, A, B), run("test", 0, A, B)])
    assert line["train_perfect"] == ["right"]
    assert line["predictions"] == [[to_json(B)]]
    assert line["solved"] is True


# -------------------------------------------------------------------------------------- collector / files


def test_collector_aggregates_when_complete_and_counts_duplicates_once() -> None:
    col = Collector({"t": 2, "u": 1})
    assert col.samples_total == 3
    first = sample("train", 0, matched=["a"])
    assert col.add(first) is None
    assert col.add(dict(first)) is None  # redelivered duplicate
    assert col.samples_done == 1
    line = col.add(sample("test", 0, matched=["a"], outputs=[(A, ["a"])]))
    assert line is not None and line["solved"] is True
    assert col.add(sample("test", 0)) is None  # task already done
    assert col.add({**sample("test", 0), "task_id": "unknown"}) is None
    assert col.samples_done == 2 and col.done_tasks == {"t"}
    assert col.status_counts == {STATUS_OK: 2, STATUS_ERROR: 0, STATUS_TIMEOUT: 0}
    assert col.cost_ms()["median"] == pytest.approx(500.0)


def test_submission_entry_format() -> None:
    assert submission_entry([[to_json(A), to_json(B)], [to_json(C_)], []]) == [
        {"attempt_1": to_json(A), "attempt_2": to_json(B)},
        {"attempt_1": to_json(C_), "attempt_2": to_json(C_)},
        {"attempt_1": EMPTY_ATTEMPT, "attempt_2": EMPTY_ATTEMPT},
    ]


def test_outputs_as_lists_from_older_workers_still_aggregate() -> None:
    # a rolling upgrade: a worker of before the text form returns its outputs as JSON lists
    old = sample("test", 0, matched=["a"], outputs=[(A, ["a"])])
    old["outputs"] = [[to_json(A), ["a"]]]
    line = aggregate_task("t", [sample("train", 0, matched=["a"]), old])
    assert line["predictions"] == [[to_json(A)]] and line["solved"] is True


# ------------------------------------------------- issue 13: programs, both differ sums, per-call time limit


def test_programs_keep_t_n_and_evo_of_each_candidate_first_row_first() -> None:
    def batt(task_id: str, S: Any, I: Any, C: Any, log_path: Any) -> Any:  # noqa: E741
        o = [
            (7, True, "b", B),
            (np.int64(9), np.bool_(False), "c", C_),  # numpy scalars: their Python values
            (8, False, "b", C_),  # a duplicate id: its first row's t_n/evo stand
            ((1, 2), None, 3, None),  # odd values: JSON-able ones kept, the id as a string
        ]
        return o, []

    r = json.loads(json.dumps(score_sample(batt, "t", S, A, B, None, kind="test")))
    assert r["programs"] == [["3", "(1, 2)", None], ["b", 7, True], ["c", 9, False]]  # a tuple t_n: its repr
    assert r["candidates"] == 3
    line = aggregate_task("t", [r])
    assert line["programs"]["b"] == {"t_n": 7, "evo": True}
    assert line["programs"]["c"] == {"t_n": 9, "evo": False}


def test_programs_come_from_the_first_sample_train_before_test() -> None:
    def run(kind: str, index: int, t_n: int) -> dict[str, Any]:
        batt = lambda *a: ([(t_n, t_n % 2 == 0, "x", B)], [])  # noqa: E731
        return score_sample(batt, "t", S, A, B, None, kind=kind, index=index)

    line = aggregate_task("t", [run("test", 0, 1), run("train", 1, 2), run("train", 0, 3)])
    assert line["programs"] == {"x": {"t_n": 3, "evo": False}}


def test_both_differ_sums_come_back_exactly() -> None:
    """The solve call's and the diff call's s rows are summed apart: differ_solve and differ."""

    def batt(task_id: str, S: Any, I: Any, C: Any, log_path: Any) -> Any:  # noqa: E741
        o = [(1, False, "a", B), (2, False, "b", C_)]
        if C is None:
            return o, [(3, "a", "d1", (100,)), (4, "a", "d1", (20,)), (5, "b", "d2", (7,)), (6, "None", "d3", (2000,))]
        return o, [(3, "a", "d1", (900,)), (5, "b", "d2", (-4,)), (7, "b", "d4", (11,))]

    results = [score_sample(batt, "t", S, A, B, None, kind=k, index=i) for k, i in (("train", 0), ("train", 1))]
    assert results[0]["differ_solve"] == [["None", "d3", 1000], ["a", "d1", 120], ["b", "d2", 7]]
    assert results[0]["differ"] == [["a", "d1", 900], ["b", "d2", 0], ["b", "d4", 11]]
    line = aggregate_task("t", results)
    assert line["differ_solve"] == {"None": {"d3": 2000}, "a": {"d1": 240}, "b": {"d2": 14}}
    assert line["differ"] == {"a": {"d1": 1800}, "b": {"d2": 0, "d4": 22}}


def test_unscored_sample_keeps_the_solve_calls_differ_scores() -> None:
    batt = lambda *a: ([(1, False, "a", B)], [(2, "a", "d", (5,))])  # noqa: E731
    r = score_sample(batt, "t", S, A, None, None, kind="test")
    assert r["differ_solve"] == [["a", "d", 5]] and r["differ"] == []


def _sleepy_diff(seconds: float) -> Any:
    def batt(task_id: str, S: Any, I: Any, C: Any, log_path: Any) -> Any:  # noqa: E741
        import time

        if C is not None:
            time.sleep(seconds)
        return [(1, False, "right", B), (2, True, "wrong", C_)], [(3, "right", "d", (40,))]

    return batt


def test_diff_call_past_the_limit_keeps_the_solve_calls_exact_match() -> None:
    from batt_tasks.call_limit import CallTimeout, call_limit

    limit = call_limit(0.3)
    kw: dict[str, Any] = {"call_limit": limit, "timeouts": (CallTimeout,)}
    results = [
        score_sample(_sleepy_diff(30), "t", S, A, B, None, kind="train", index=0, **kw),
        score_sample(_sleepy_diff(0), "t", S, A, B, None, kind="train", index=1, **kw),
        score_sample(_sleepy_diff(30), "t", S, A, B, None, kind="test", index=0, **kw),
    ]
    r = results[0]
    assert r["status"] == STATUS_TIMEOUT and r["call"] == "diff"
    assert r["error"] == "diff call: time limit of 0.3s exceeded"
    assert r["matched"] == ["right"] and r["candidates"] == 2
    assert r["differ_solve"] == [["right", "d", 40]] and r["differ"] == []
    assert r["seconds"] < 10  # the 30 s sleep was cut short
    assert results[1]["status"] == STATUS_OK
    line = aggregate_task("t", results)
    assert line["train_scores"] == {"right": 2000} and line["test_scores"] == {"right": 1000}
    assert line["train_perfect"] == ["right"]  # its solve calls all completed
    assert line["solved"] is True and line["predictions"] == [[to_json(B), to_json(C_)]]
    assert (line["ok"], line["timeouts"]) == (1, 2)
    assert [f["sample"] for f in line["failures"]] == ["t train[0]", "t test[0]"]
    assert all(f["status"] == STATUS_TIMEOUT and f["error"].startswith("diff call:") for f in line["failures"])


def test_solve_call_past_the_limit_leaves_nothing() -> None:
    from batt_tasks.call_limit import CallTimeout, call_limit

    def batt(*args: Any) -> Any:
        try:
            while True:
                pass
        except Exception:  # noqa: BLE001 - like a generated batt: the call limit is not an Exception
            return [(1, False, "x", B)], []

    r = score_sample(batt, "t", S, A, B, None, kind="train", call_limit=call_limit(0.2), timeouts=(CallTimeout,))
    assert r["status"] == STATUS_TIMEOUT and r["call"] == "solve"
    assert r["error"] == "solve call: time limit of 0.2s exceeded"
    assert r["matched"] == [] and r["programs"] == [] and r["candidates"] == 0
    line = aggregate_task("t", [r])
    assert line["train_scores"] == {} and line["train_perfect"] == []


def test_prediction_candidates_name_the_candidate_behind_each_attempt() -> None:
    results = [
        sample("train", 0, matched=["b", "c"]),
        sample("test", 0, matched=["c"], outputs=[(A, ["a"]), (B, ["b", "c"]), (D, ["d"])]),
    ]
    line = aggregate_task("t", results)
    # b and c tie on train score (1000): b (smaller id) picks B; c's output is B too, so the next distinct one
    # comes from the best-ranked remaining candidate, a (0, id "a" < "d")
    assert line["predictions"] == [[to_json(B), to_json(A)]]
    assert line["prediction_candidates"] == [["b", "a"]]


@pytest.mark.parametrize(
    ("output", "matches", "why"),
    [
        ([[4, 3], [2, 1]], True, "a list of lists equal cell by cell matches (== against a tuple is False)"),
        (np.array([[4, 3], [2, 1]]), True, "a numpy int array matches through tolist (== would be elementwise)"),
        (np.array([[4, 3], [2, 1]], dtype=np.int8), True, "any integer dtype"),
        (((4, 3), (2, True)), False, "a bool cell never matches (True == 1 in Python)"),
        (np.array([[True, False]]), False, "a numpy bool array is no grid"),
        (((4.0, 3), (2, 1)), False, "a float cell never matches (4.0 == 4 in Python)"),
        (np.array([[4.0, 3.0], [2.0, 1.0]]), False, "a numpy float array is no grid"),
    ],
)
def test_match_rules_where_they_differ_from_python_equality(output: Any, matches: bool, why: str) -> None:
    r = score_sample(batt_of({"x": output}), "t", S, A, B, None, kind="train")
    assert (r["matched"] == ["x"]) is matches, why


def test_a_duplicate_candidate_id_scores_once_and_matches_if_any_row_does() -> None:
    def dup(*args: Any) -> Any:
        return [(1, False, "x", C_), (2, True, "x", B), (3, False, "x", B)], []

    results = [score_sample(dup, "t", S, A, B, None, kind="train", index=i) for i in range(2)]
    assert results[0]["matched"] == ["x"] and results[0]["candidates"] == 1
    line = aggregate_task("t", results)
    assert line["train_scores"] == {"x": 2 * MATCH_SCORE}  # once per sample, not once per row
    assert line["programs"] == {"x": {"t_n": 1, "evo": False}}


# ------------------------------------------------- the packed form: what crosses the pipe and the result backend


def _packed_batt(task_id: str, S: Any, I: Any, C: Any, log_path: Any) -> Any:  # noqa: E741
    """Candidates with and without an output, duplicate ids, odd t_n/evo, and s rows naming ids with no o row."""
    o = [
        (3, False, "b", B),
        (1, True, "a", A),
        (2, False, "c", None),  # a candidate without an output grid: in ids, never in outputs
        (9, False, "b", C_),  # a duplicate id: its first row's t_n/evo stand
        ((1, 2), None, 7, B),  # a tuple t_n (its repr) and a non-string id
    ]
    if C is None:
        s = [(0, "a", "d1", 5), (0, "zz", "d1", 3), (0, "b", "d2", (900,))]
    else:  # the diff call: every candidate of ids on "cell", an s-only id, and a clamped score
        s = [(0, cid, "cell", 10) for cid in ("7", "a", "b", "c", "zz")] + [(0, "only_s", "cell", 5000)]
    return o, s


@pytest.mark.parametrize(("kind", "expected"), [("train", B), ("test", B), ("test", None)])
def test_packed_result_expands_to_the_expanded_one(kind: str, expected: Any) -> None:
    from batt_tasks.scoring import expand_result, is_packed, pack_result

    expanded = score_sample(_packed_batt, "t", S, A, expected, kind=kind, index=2)
    packed = json.loads(json.dumps(score_sample(_packed_batt, "t", S, A, expected, kind=kind, index=2, packed=True)))
    assert is_packed(packed) and not is_packed(expanded) and "programs" not in packed
    # the ids once: those with an o row (sorted), then those only in s rows (sorted)
    assert packed["ids"] == ["7", "a", "b", "c"] + (["only_s", "zz"] if expected is not None else ["zz"])
    assert packed["candidates"] == expanded["candidates"] == 4
    assert packed["t_n"] == ["(1, 2)", 1, 3, 2] and packed["evo"] == [None, True, False, False]
    if expected is not None:  # every id scored on "cell" in order: positions left out
        assert packed["differ"] == [["cell", None, [10, 10, 10, 10, 1000, 10]]]  # only_s clamped
    plain = {k: v for k, v in json.loads(json.dumps(expanded)).items() if k != "seconds"}
    assert {k: v for k, v in expand_result(packed).items() if k != "seconds"} == plain
    assert {k: v for k, v in json.loads(json.dumps(pack_result(expanded))).items() if k != "seconds"} == {
        k: v for k, v in packed.items() if k != "seconds"
    }
    assert len(json.dumps(packed)) < len(json.dumps(expanded))


def test_packed_and_expanded_results_aggregate_to_the_same_task_line() -> None:
    from batt_tasks.scoring import TIMING_FIELDS

    def results(packed: bool) -> list[dict[str, Any]]:
        return [
            json.loads(json.dumps(score_sample(_packed_batt, "t", S, A, e, kind=k, index=i, packed=packed)))
            for k, i, e in (("train", 0, B), ("train", 1, A), ("test", 0, B), ("test", 1, None))
        ]

    packed, expanded = results(True), results(False)
    mixed = [packed[0], expanded[1], packed[2], expanded[3]]  # a rolling upgrade: old and new workers in one run
    lines = [aggregate_task("t", r) for r in (packed, expanded, mixed)]
    clean = [{k: v for k, v in line.items() if k not in TIMING_FIELDS} for line in lines]
    assert clean[0] == clean[1] == clean[2]
    assert clean[0]["programs"]["7"] == {"t_n": "(1, 2)", "evo": None}
    assert clean[0]["differ"]["only_s"] == {"cell": 3000} and clean[0]["differ_solve"]["zz"] == {"d1": 12}


def test_failed_samples_pack_to_nothing() -> None:
    from batt_tasks.scoring import expand_result

    def broken(*a: Any) -> Any:
        raise ValueError("no")

    r = score_sample(broken, "t", S, A, B, kind="test", packed=True)
    assert r["status"] == STATUS_ERROR and r["ids"] == [] and r["outputs"] == [] and r["differ"] == []
    assert expand_result(r)["programs"] == [] and r["candidates"] == 0


def test_run_message_sends_the_packed_form_in_both_modes() -> None:
    from batt_tasks.sample import run_message
    from batt_tasks.scoring import expand_result, is_packed

    message = {"run_id": "r", "task_id": "t", "kind": "test", "index": 0, "S": [[to_json(A), to_json(B)]]}
    message.update(input=to_json(A), expected=to_json(B), batt="tests.batts.counting", time_limit=5.0)
    r = run_message(message, None, 10**6, batt=_packed_batt)
    assert is_packed(r)
    assert expand_result(r)["programs"] == [["7", "(1, 2)", None], ["a", 1, True], ["b", 3, False], ["c", 2, False]]
