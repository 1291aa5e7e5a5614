"""The pure scoring core: run a batt on one sample, and aggregate a task's samples.

Nothing here knows about Celery, processes or files. Local mode and the Celery sample task
both call :func:`score_sample`; the producer calls :func:`aggregate_task` on the results,
whichever way they were computed, so both modes give identical results.

Sample results are plain JSON values (dicts, lists, ints, strings) so that they look the same
after a trip through a pipe or a result backend. A sample result comes in two forms with the same content:

- **expanded** (``score_sample``'s default, what the tests and the README's matching rules speak of):
  ``programs`` ``[[id, t_n, evo], ...]``, ``matched`` ids, ``outputs`` ``[[text, [id, ...]], ...]``,
  ``differ_solve``/``differ`` ``[[id, differ, sum], ...]``;
- **packed** (``packed=True``: what both modes send from the process that scored the sample, see
  :func:`batt_tasks.sample.run_message`): the candidate ids once, in ``ids``, and every other field
  referring to them by position (see :func:`pack_result`). About half the JSON of the expanded form
  and a fifth of its decoding time for a battery of hundreds of candidates.

:func:`aggregate_task` takes either (a result from a worker of before the packed form aggregates as
before); :func:`expand_result` turns a packed result back into the expanded one.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from batt_tasks.grids import Grid, as_grid, from_text, to_grid, to_json, to_text

BattFn = Callable[..., Any]

MATCH_SCORE = 1000
DIFFER_MIN, DIFFER_MAX = 0, 1000

STATUS_OK, STATUS_ERROR, STATUS_TIMEOUT = "ok", "error", "timeout"
TRACEBACK_MAX_CHARS = 4000  # a failed sample's result keeps the last this many characters of its traceback
SAMPLE_GRACE = 1.0  # seconds a sample may take beyond its two calls' limits before it is stopped whole

# The fields of a task line that are measurements, not results: runs of the same work differ only in these.
TIMING_FIELDS = ("seconds", "sample_seconds")


class BattProtocolError(Exception):
    """The batt returned something that is not ``(o, s)`` in the protocol's shape."""


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line, bounded in length."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def traceback_text(exc: BaseException, limit: int = TRACEBACK_MAX_CHARS) -> str:
    """``exc``'s formatted traceback, keeping its last ``limit`` characters (where it was raised)."""
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= limit else "...\n" + text[-(limit - 4) :]


def sample_key(task_id: str, kind: str, index: int) -> str:
    """The stable name of a sample, e.g. ``007bbfb7 train[2]``."""
    return f"{task_id} {kind}[{index}]"


def _entries(value: Any, width: int, what: str) -> list[Sequence[Any]]:
    if not isinstance(value, (list, tuple)):
        raise BattProtocolError(f"batt returned {what} of type {type(value).__name__}, expected a list")
    rows: list[Sequence[Any]] = []
    for n, entry in enumerate(value):
        if not isinstance(entry, (list, tuple)) or len(entry) < width:
            raise BattProtocolError(f"batt's {what}[{n}] is {type(entry).__name__}, expected a {width}-tuple")
        rows.append(entry)
    return rows


def _split(returned: Any) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
    if not isinstance(returned, (list, tuple)) or len(returned) != 2:
        raise BattProtocolError(f"batt returned {type(returned).__name__}, expected the pair (o, s)")
    o, s = returned
    return _entries(o, 4, "o"), _entries(s, 4, "s")


def _differ_score(raw: Any) -> int:
    value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return DIFFER_MIN
    return max(DIFFER_MIN, min(DIFFER_MAX, number))


def _differ_totals(s: Iterable[Sequence[Any]]) -> dict[tuple[str, str], int]:
    """``(candidate, differ) → summed clamped score`` of one batt call's ``s``."""
    totals: dict[tuple[str, str], int] = {}
    for entry in s:
        key = (str(entry[1]), str(entry[2]))
        totals[key] = totals.get(key, 0) + _differ_score(entry[3])
    return totals


def _plain(value: Any) -> Any:
    """``t_n``/``evo`` as JSON: bools, ints, floats, strings and None as they are, numpy scalars as their
    Python value, anything else as its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except Exception:  # noqa: BLE001 - not a scalar after all
            return repr(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    return repr(value)


def sample_time_limit(call_limit: float) -> float:
    """The time a whole sample may take: its two batt calls (solve and diff), each limited to ``call_limit``,
    plus :data:`SAMPLE_GRACE`. Local mode kills a sample's process after this; Celery's soft limit is this."""
    return 2 * call_limit + SAMPLE_GRACE


def _no_limit() -> AbstractContextManager[None]:
    return nullcontext()


def score_sample(
    batt: BattFn,
    task_id: str,
    S: tuple[tuple[Grid, Grid], ...],
    I: Grid,  # noqa: E741 - the protocol's name
    expected: Grid | None,
    log_path: str | None = None,
    *,
    kind: str = "test",
    index: int = 0,
    reraise: tuple[type[BaseException], ...] = (),
    call_limit: Callable[[], AbstractContextManager[Any]] = _no_limit,
    timeouts: tuple[type[BaseException], ...] = (),
    packed: bool = False,
) -> dict[str, Any]:
    """Run ``batt`` on one sample and score it.

    The solve call is ``batt(task_id, S, I, None, log_path)``; when ``expected`` is known the diff call is
    ``batt(task_id, S, I, expected, log_path)``. Each call runs inside ``call_limit()``, a context that
    raises one of ``timeouts`` when the call overruns its time limit (``-t``). The result keeps:

    - ``matched``: candidates whose output (solve call) equals ``expected`` exactly (see the README's
      matching rules); ``candidates``: how many distinct candidate ids; ``programs``: ``[id, t_n, evo]`` of
      each candidate, from its first row; ``outputs`` (test samples): each distinct output grid (text form)
      with the ids of the candidates that gave it;
    - ``differ_solve`` / ``differ``: ``[candidate, differ, sum]`` of the clamped ``s`` scores of the solve
      call / of the diff call, kept apart.

    With ``packed`` the same content comes in the packed form (:func:`pack_result`).

    A solve call that fails (exception, protocol violation, timeout) leaves the sample nothing. A diff call
    that times out keeps the solve call's results (status ``timeout``, ``call`` ``"diff"``); one that raises
    discards them (status ``error``). Exceptions in ``reraise`` propagate.
    """
    started = time.perf_counter()
    result: dict[str, Any] = {
        "task_id": task_id,
        "kind": kind,
        "index": index,
        "status": STATUS_OK,
        "error": None,
        "call": None,
        "scored": expected is not None,
    }
    programs: dict[str, list[Any]] = {}
    matched: set[str] = set()
    outputs: dict[Grid, list[str]] = {}
    solve_totals: dict[tuple[str, str], int] = {}
    diff_totals: dict[tuple[str, str], int] = {}
    phase = "solve"
    try:
        with call_limit():
            returned = batt(task_id, S, I, None, log_path)
        o, s = _split(returned)
        for entry in o:
            cid = str(entry[2])
            if cid not in programs:
                programs[cid] = [cid, _plain(entry[0]), _plain(entry[1])]
            grid = as_grid(entry[3])
            if grid is None:
                continue
            if expected is not None and grid == expected:
                matched.add(cid)
            if kind == "test":
                ids = outputs.setdefault(grid, [])
                if cid not in ids:
                    ids.append(cid)
        solve_totals = _differ_totals(s)
        if expected is not None:
            phase = "diff"
            with call_limit():
                returned = batt(task_id, S, I, expected, log_path)
            _, s = _split(returned)
            diff_totals = _differ_totals(s)
    except reraise:
        raise
    except timeouts as exc:
        text = f"{phase} call: {str(exc) or 'time limit exceeded'}"
        if phase == "diff":  # the solve call's results stand
            result.update(status=STATUS_TIMEOUT, error=text, call="diff")
        else:
            result.update(status=STATUS_TIMEOUT, error=text, call="solve")
            programs, matched, outputs, solve_totals = {}, set(), {}, {}
        result["traceback"] = traceback_text(exc)  # where the batt was when its time ran out
    except Exception as exc:  # noqa: BLE001 - any batt failure is this sample's error, never the run's
        result.update(status=STATUS_ERROR, error=one_line(exc), call=phase)
        programs, matched, outputs, solve_totals, diff_totals = {}, set(), {}, {}, {}
        result["traceback"] = traceback_text(exc)
    # Grids in text form ("070|707"): a test sample's outputs are most of a result's bytes.
    texts = [(to_text(grid), ids) for grid, ids in outputs.items()]
    fill = _fill_packed if packed else _fill_expanded
    fill(result, programs, matched, texts, solve_totals, diff_totals)
    result["seconds"] = round(time.perf_counter() - started, 6)
    return result


def _fill_expanded(
    result: dict[str, Any],
    programs: Mapping[str, list[Any]],
    matched: set[str],
    outputs: list[tuple[str, list[str]]],
    solve_totals: Mapping[tuple[str, str], int],
    diff_totals: Mapping[tuple[str, str], int],
) -> None:
    result["candidates"] = len(programs)
    result["programs"] = [programs[cid] for cid in sorted(programs)]
    result["matched"] = sorted(matched)
    result["differ_solve"] = [[cid, did, total] for (cid, did), total in sorted(solve_totals.items())]
    result["differ"] = [[cid, did, total] for (cid, did), total in sorted(diff_totals.items())]
    result["outputs"] = [[text, ids] for text, ids in outputs]


def _pack_totals(totals: Mapping[tuple[str, str], int], position: Mapping[str, int]) -> list[list[Any]]:
    """``[[differ, positions or None, sums], ...]`` by differ id; None: every candidate of ``ids``, in order."""
    by_differ: dict[str, tuple[list[int], list[int]]] = {}
    for (cid, did), total in sorted(totals.items(), key=lambda item: (item[0][1], position[item[0][0]])):
        at, sums = by_differ.setdefault(did, ([], []))
        at.append(position[cid])
        sums.append(total)
    every = len(position)
    return [
        [did, None if len(at) == every and at[-1] == every - 1 else at, sums] for did, (at, sums) in by_differ.items()
    ]


def _fill_packed(
    result: dict[str, Any],
    programs: Mapping[str, list[Any]],
    matched: set[str],
    outputs: list[tuple[str, list[str]]],
    solve_totals: Mapping[tuple[str, str], int],
    diff_totals: Mapping[tuple[str, str], int],
) -> None:
    ids = sorted(programs)
    more = {cid for cid, _ in solve_totals}.union(cid for cid, _ in diff_totals).difference(programs)
    ids.extend(sorted(more))
    position = {cid: n for n, cid in enumerate(ids)}
    result["candidates"] = len(programs)
    result["ids"] = ids
    rows = [programs[cid] for cid in ids[: len(programs)]]
    result["t_n"] = [row[1] for row in rows]
    result["evo"] = [row[2] for row in rows]
    result["matched"] = sorted(position[cid] for cid in matched)
    result["differ_solve"] = _pack_totals(solve_totals, position)
    result["differ"] = _pack_totals(diff_totals, position)
    result["outputs"] = [[text, [position[cid] for cid in cids]] for text, cids in outputs]


def is_packed(result: Mapping[str, Any]) -> bool:
    """Whether a sample result is in the packed form."""
    return "ids" in result


def _unpack_totals(packed: Iterable[Sequence[Any]], ids: Sequence[str]) -> Iterator[tuple[str, str, int]]:
    """``(candidate, differ, sum)`` of packed differ sums, in no particular order."""
    for did, at, sums in packed:
        for n, total in zip(range(len(ids)) if at is None else at, sums, strict=True):
            yield ids[n], did, total


def pack_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The packed form of an expanded sample result (a packed one is returned as it is).

    - ``ids``: the candidate ids: first the ``candidates`` ids that gave an ``o`` row, sorted (the rows of
      the expanded ``programs``), then the ids that appear only in ``s`` rows, sorted;
    - ``t_n`` / ``evo``: the ``programs`` columns, one entry per id of the first block of ``ids``;
    - ``matched``: positions in ``ids``, ascending; ``outputs``: ``[[text, [position, ...]], ...]``;
    - ``differ_solve`` / ``differ``: ``[[differ, positions, sums], ...]``, one entry per differ id (sorted),
      positions ascending; ``positions`` is None when the differ scored every id of ``ids``, in order.

    Every other field is as in the expanded form.
    """
    if is_packed(result):
        return dict(result)
    skip = ("programs", "matched", "differ_solve", "differ", "outputs", "candidates")
    packed = {k: v for k, v in result.items() if k not in skip}
    programs = {row[0]: list(row) for row in result.get("programs", ())}
    solve = {(cid, did): int(total) for cid, did, total in result.get("differ_solve", ())}
    diff = {(cid, did): int(total) for cid, did, total in result.get("differ", ())}
    outputs = [(text, list(ids)) for text, ids in result.get("outputs", ())]
    _fill_packed(packed, programs, set(result.get("matched", ())), outputs, solve, diff)
    packed["candidates"] = int(result.get("candidates", len(programs)))
    return packed


def expand_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The expanded form of a sample result (an expanded one is returned as it is): what ``score_sample``
    without ``packed`` gives for the same sample."""
    if not is_packed(result):
        return dict(result)
    ids = result["ids"]
    count = int(result["candidates"])
    skip = ("ids", "t_n", "evo")
    expanded = {k: v for k, v in result.items() if k not in skip}
    expanded["programs"] = [
        [cid, t_n, evo] for cid, t_n, evo in zip(ids[:count], result["t_n"], result["evo"], strict=True)
    ]
    expanded["matched"] = [ids[n] for n in result["matched"]]
    for field in ("differ_solve", "differ"):
        expanded[field] = [list(row) for row in sorted(_unpack_totals(result[field], ids))]
    expanded["outputs"] = [[text, [ids[n] for n in at]] for text, at in result["outputs"]]
    return expanded


def _nothing(status: str, error: str) -> dict[str, Any]:
    """The scoring fields of a sample that produced nothing."""
    return {
        "status": status,
        "error": error,
        "candidates": 0,
        "programs": [],
        "matched": [],
        "differ_solve": [],
        "differ": [],
        "outputs": [],
    }


def failed_sample(task_id: str, kind: str, index: int, status: str, error: str, scored: bool) -> dict[str, Any]:
    """The result of a sample that produced nothing (timeout, crash, oversized result...)."""
    return {
        "task_id": task_id,
        "kind": kind,
        "index": index,
        "call": None,
        "scored": scored,
        **_nothing(status, error),
        "seconds": 0.0,
    }


def bound_size(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Return ``result``, or an ``error`` result saying it was too large when its JSON exceeds ``max_bytes``.

    A failed sample's traceback is dropped first when that is enough to fit."""
    size = len(json.dumps(result, separators=(",", ":")))
    if size <= max_bytes:
        return result
    if "traceback" in result:
        return bound_size({k: v for k, v in result.items() if k != "traceback"}, max_bytes)
    return failed_sample(
        result["task_id"],
        result["kind"],
        result["index"],
        STATUS_ERROR,
        f"result too large: {size} bytes of JSON > limit {max_bytes} (BATT_MAX_RESULT_BYTES)",
        result["scored"],
    )


def _output_json(value: Any) -> list[list[int]]:
    """A result's output grid as JSON lists: its text form, or lists from a worker older than the text form."""
    return from_text(value) if isinstance(value, str) else to_json(to_grid(value))


def _ranking(candidates: Iterable[str], train_scores: Mapping[str, int]) -> list[str]:
    return sorted(candidates, key=lambda cid: (-train_scores.get(cid, 0), cid))


def _solve_kept(r: Mapping[str, Any]) -> bool:
    """Whether a sample's solve call completed (it is ok, or only its diff call timed out)."""
    return r["status"] == STATUS_OK or r.get("call") == "diff"


def _add_sums(into: dict[str, dict[str, int]], rows: Iterable[Sequence[Any]]) -> None:
    for cid, did, score in rows:
        per = into.setdefault(cid, {})
        per[did] = per.get(did, 0) + int(score)


def _add_packed_sums(into: dict[str, dict[str, int]], packed: Iterable[Sequence[Any]], ids: Sequence[str]) -> None:
    for did, at, sums in packed:
        for cid, score in zip(ids if at is None else [ids[n] for n in at], sums, strict=True):
            per = into.get(cid)
            if per is None:
                per = into[cid] = {}
            per[did] = per.get(did, 0) + int(score)


class _Sample:
    """What :func:`aggregate_task` reads of one sample result, from either form."""

    __slots__ = ("r", "ids", "matched", "outputs")

    def __init__(self, r: Mapping[str, Any]) -> None:
        self.r = r
        self.ids: list[str] | None = r.get("ids")
        if self.ids is None:
            self.matched: list[str] = r["matched"]
            self.outputs: list[tuple[Any, list[str]]] = r["outputs"]
        else:
            ids = self.ids
            self.matched = [ids[n] for n in r["matched"]]
            self.outputs = [(text, [ids[n] for n in at]) for text, at in r["outputs"]]

    def add_sums(self, field: str, into: dict[str, dict[str, int]]) -> None:
        if self.ids is None:
            _add_sums(into, self.r.get(field, ()))
        else:
            _add_packed_sums(into, self.r[field], self.ids)

    def add_programs(self, into: dict[str, dict[str, Any]]) -> None:
        r = self.r
        if self.ids is None:
            rows: Iterable[Sequence[Any]] = r.get("programs", ())
        else:  # the ids after the first len(t_n) ones appear only in differ rows
            rows = zip(self.ids[: len(r["t_n"])], r["t_n"], r["evo"], strict=True)
        for cid, t_n, evo in rows:
            if cid not in into:
                into[cid] = {"t_n": t_n, "evo": evo}


def _sorted_sums(sums: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    return {c: dict(sorted(sums[c].items())) for c in sorted(sums)}


def aggregate_task(task_id: str, results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine the sample results of one task into its result line.

    - ``train_scores`` / ``test_scores``: per candidate, the sum of exact-match scores (1000 per matched
      sample) over train / scored test samples; candidates that scored 0 are left out.
    - ``candidates``: the largest number of distinct candidates the batt gave on one sample.
    - ``programs``: per candidate, its ``t_n`` and ``evo`` as the batt returned them (from the first sample,
      train before test, in which the candidate appears).
    - ``train_perfect``: candidates that matched every train sample.
    - ``differ_solve`` / ``differ``: per candidate and differ, the clamped differ scores of the solve calls /
      of the diff calls, summed over samples (``differ_solve + differ`` is the replaced scorer's total).
    - ``predictions``: per test input, up to 2 distinct outputs of the best candidates by train score,
      ties broken by candidate id; ``prediction_candidates``: the candidate id behind each attempt.
    - ``solved``: every test output is among its attempts (ARC Prize rule); None when a test output is unknown.
    - ``sample_seconds``: each sample's cost (train samples, then test samples), for cost histograms.
    """
    by_key = {(r["kind"], int(r["index"])): r for r in results}
    train = [by_key[k] for k in sorted(by_key) if k[0] == "train"]
    test = [by_key[k] for k in sorted(by_key) if k[0] == "test"]
    views = [_Sample(r) for r in train + test]
    test_views = views[len(train) :]

    train_scores: dict[str, int] = {}
    test_scores: dict[str, int] = {}
    differ: dict[str, dict[str, int]] = {}
    differ_solve: dict[str, dict[str, int]] = {}
    programs: dict[str, dict[str, Any]] = {}
    for view in views:
        r = view.r
        if r["scored"]:
            scores = train_scores if r["kind"] == "train" else test_scores
            for cid in view.matched:
                scores[cid] = scores.get(cid, 0) + MATCH_SCORE
        view.add_sums("differ", differ)
        view.add_sums("differ_solve", differ_solve)
        view.add_programs(programs)

    # Only candidates that scored or gave a test output can be ranked into a prediction.
    ranked = set(train_scores).union(*(ids for view in test_views for _, ids in view.outputs))
    ranking = _ranking(ranked, train_scores)
    all_train_kept = bool(train) and all(_solve_kept(r) for r in train)
    train_perfect = [c for c in sorted(train_scores) if all_train_kept and train_scores[c] == MATCH_SCORE * len(train)]

    predictions: list[list[list[list[int]]]] = []
    prediction_candidates: list[list[str]] = []
    solved_each: list[bool | None] = []
    for view in test_views:
        r, outputs = view.r, view.outputs
        owner: dict[str, int] = {}
        for n, (_, ids) in enumerate(outputs):
            for cid in ids:
                owner.setdefault(cid, n)
        chosen: list[int] = []
        by: list[str] = []
        for cid in ranking:
            n = owner.get(cid)
            if n is not None and n not in chosen:
                chosen.append(n)
                by.append(cid)
                if len(chosen) == 2:
                    break
        predictions.append([_output_json(outputs[n][0]) for n in chosen])
        prediction_candidates.append(by)
        if not r["scored"]:
            solved_each.append(None)
        else:
            matched = set(view.matched)
            solved_each.append(any(matched.intersection(outputs[n][1]) for n in chosen))

    statuses = [r["status"] for r in train + test]
    return {
        "task_id": task_id,
        "samples": {"train": len(train), "test": len(test)},
        "ok": statuses.count(STATUS_OK),
        "errors": statuses.count(STATUS_ERROR),
        "timeouts": statuses.count(STATUS_TIMEOUT),
        "failures": [
            {"sample": sample_key(task_id, r["kind"], r["index"]), "status": r["status"], "error": r["error"]}
            for r in train + test
            if r["status"] != STATUS_OK
        ],
        "candidates": max((int(r["candidates"]) for r in train + test), default=0),
        "programs": {c: programs[c] for c in sorted(programs)},
        "train_scores": {c: train_scores[c] for c in sorted(train_scores)},
        "test_scores": {c: test_scores[c] for c in sorted(test_scores)},
        "train_perfect": train_perfect,
        "differ_solve": _sorted_sums(differ_solve),
        "differ": _sorted_sums(differ),
        "predictions": predictions,
        "prediction_candidates": prediction_candidates,
        "solved": None if not solved_each or None in solved_each else all(solved_each),
        "seconds": round(sum(float(r.get("seconds", 0.0)) for r in train + test), 6),
        "sample_seconds": [round(float(r.get("seconds", 0.0)), 6) for r in train + test],
    }
