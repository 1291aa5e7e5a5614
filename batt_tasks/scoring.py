"""The pure scoring core: run a batt on one sample, and aggregate a task's samples.

Nothing here knows about Celery, processes or files. Local mode and the Celery sample task
both call :func:`score_sample`; the producer calls :func:`aggregate_task` on the results,
whichever way they were computed, so both modes give identical results.

Sample results are plain JSON values (dicts, lists, ints, strings) so that they look the same
after a trip through a pipe or a result backend.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from batt_tasks.grids import Grid, as_grid, from_text, to_grid, to_json, to_text

BattFn = Callable[..., Any]

MATCH_SCORE = 1000
DIFFER_MIN, DIFFER_MAX = 0, 1000

STATUS_OK, STATUS_ERROR, STATUS_TIMEOUT = "ok", "error", "timeout"
TRACEBACK_MAX_CHARS = 4000  # a failed sample's result keeps the last this many characters of its traceback


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
) -> dict[str, Any]:
    """Run ``batt`` on one sample and score it.

    The solve pass calls ``batt(task_id, S, I, None, log_path)``; when ``expected`` is known the diff
    pass calls it again with ``C=expected`` and its differ scores are kept. A candidate matches when
    its output equals ``expected`` exactly. An exception from the batt becomes an ``error`` result,
    except those in ``reraise`` (a caller's own signals, such as a time limit), which propagate.
    """
    started = time.perf_counter()
    result: dict[str, Any] = {
        "task_id": task_id,
        "kind": kind,
        "index": index,
        "status": STATUS_OK,
        "error": None,
        "scored": expected is not None,
        "candidates": 0,
        "matched": [],
        "differ": [],
        "outputs": [],
    }
    try:
        o, _ = _split(batt(task_id, S, I, None, log_path))
        seen: set[str] = set()
        matched: set[str] = set()
        outputs: dict[Grid, list[str]] = {}
        for entry in o:
            cid = str(entry[2])
            seen.add(cid)
            grid = as_grid(entry[3])
            if grid is None:
                continue
            if expected is not None and grid == expected:
                matched.add(cid)
            if kind == "test":
                ids = outputs.setdefault(grid, [])
                if cid not in ids:
                    ids.append(cid)
        result["candidates"] = len(seen)  # a count, not the ids: results stay small
        result["matched"] = sorted(matched)
        # Grids in text form ("070|707"): a test sample's outputs are most of a result's bytes.
        result["outputs"] = [[to_text(grid), ids] for grid, ids in outputs.items()]
        if expected is not None:
            _, s = _split(batt(task_id, S, I, expected, log_path))
            totals: dict[tuple[str, str], int] = {}
            for entry in s:
                key = (str(entry[1]), str(entry[2]))
                totals[key] = totals.get(key, 0) + _differ_score(entry[3])
            result["differ"] = [[cid, did, total] for (cid, did), total in sorted(totals.items())]
    except reraise:
        raise
    except Exception as exc:  # noqa: BLE001 - any batt failure is this sample's error, never the run's
        result.update(status=STATUS_ERROR, error=one_line(exc), candidates=0, matched=[], differ=[], outputs=[])
        result["traceback"] = traceback_text(exc)
    result["seconds"] = round(time.perf_counter() - started, 6)
    return result


def failed_sample(task_id: str, kind: str, index: int, status: str, error: str, scored: bool) -> dict[str, Any]:
    """The result of a sample that produced nothing (timeout, crash, oversized result...)."""
    return {
        "task_id": task_id,
        "kind": kind,
        "index": index,
        "status": status,
        "error": error,
        "scored": scored,
        "candidates": 0,
        "matched": [],
        "differ": [],
        "outputs": [],
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


def aggregate_task(task_id: str, results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine the sample results of one task into its result line.

    - ``train_scores`` / ``test_scores``: per candidate, the sum of exact-match scores (1000 per matched
      sample) over train / scored test samples; candidates that scored 0 are left out.
    - ``candidates``: the largest number of distinct candidates the batt gave on one sample.
    - ``train_perfect``: candidates that matched every train sample.
    - ``differ``: per candidate and differ, the clamped differ scores summed over samples.
    - ``predictions``: per test input, up to 2 distinct outputs of the best candidates by train score,
      ties broken by candidate id.
    - ``solved``: every test output is among its attempts (ARC Prize rule); None when a test output is unknown.
    """
    by_key = {(r["kind"], int(r["index"])): r for r in results}
    train = [by_key[k] for k in sorted(by_key) if k[0] == "train"]
    test = [by_key[k] for k in sorted(by_key) if k[0] == "test"]

    train_scores: dict[str, int] = {}
    test_scores: dict[str, int] = {}
    differ: dict[str, dict[str, int]] = {}
    for r in train + test:
        if r["scored"]:
            scores = train_scores if r["kind"] == "train" else test_scores
            for cid in r["matched"]:
                scores[cid] = scores.get(cid, 0) + MATCH_SCORE
        for cid, did, score in r["differ"]:
            per = differ.setdefault(cid, {})
            per[did] = per.get(did, 0) + int(score)

    # Only candidates that scored or gave a test output can be ranked into a prediction.
    ranked = set(train_scores).union(*(ids for r in test for _, ids in r["outputs"]))
    ranking = _ranking(ranked, train_scores)
    all_train_ok = bool(train) and all(r["status"] == STATUS_OK for r in train)
    train_perfect = [c for c in sorted(train_scores) if all_train_ok and train_scores[c] == MATCH_SCORE * len(train)]

    predictions: list[list[list[list[int]]]] = []
    solved_each: list[bool | None] = []
    for r in test:
        owner: dict[str, int] = {}
        for n, (_, ids) in enumerate(r["outputs"]):
            for cid in ids:
                owner.setdefault(cid, n)
        chosen: list[int] = []
        for cid in ranking:
            n = owner.get(cid)
            if n is not None and n not in chosen:
                chosen.append(n)
                if len(chosen) == 2:
                    break
        predictions.append([_output_json(r["outputs"][n][0]) for n in chosen])
        if not r["scored"]:
            solved_each.append(None)
        else:
            matched = set(r["matched"])
            solved_each.append(any(matched.intersection(r["outputs"][n][1]) for n in chosen))

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
        "train_scores": {c: train_scores[c] for c in sorted(train_scores)},
        "test_scores": {c: test_scores[c] for c in sorted(test_scores)},
        "train_perfect": train_perfect,
        "differ": {c: dict(sorted(differ[c].items())) for c in sorted(differ)},
        "predictions": predictions,
        "solved": None if not solved_each or None in solved_each else all(solved_each),
        "seconds": round(sum(float(r.get("seconds", 0.0)) for r in train + test), 6),
    }
