"""From a sample message (JSON) to a scored sample result: the glue both modes share.

The message's grids arrive as JSON lists; the batt protocol wants tuples of tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batt_tasks.call_limit import CallTimeout, call_limit
from batt_tasks.grids import to_grid
from batt_tasks.loader import BattFn, describe, load_code
from batt_tasks.scoring import STATUS_ERROR, bound_size, failed_sample, score_sample

REJECTED = "rejected"  # the field of a sample result saying the worker refused to load the batt


def bundle_key(bundle_id: str) -> str:
    """The result-backend key that holds a packed batt bundle."""
    return f"batt-bundle-{bundle_id}"


def rejected_result(message: Mapping[str, Any], worker: str, reason: str) -> dict[str, Any]:
    """The result of a sample whose batt the worker refused or could not load: the run stops on it."""
    text = f"worker {worker} rejected the batt {describe(message.get('batt', '?'))}: {reason}"
    result = failed_sample(
        message["task_id"], message["kind"], message["index"], STATUS_ERROR, text, message.get("expected") is not None
    )
    result[REJECTED] = {"worker": worker, "reason": reason}
    return result


class SampleFailed(Exception):  # noqa: N818 - named for what it reports, as Celery shows it
    """A sample that ended as an ``error`` or a ``timeout``, raised by the sample task so that Celery stores it
    (and Flower shows it) as FAILURE instead of SUCCESS. Its one argument is the sample's result, which
    the producer records as for any other sample (see ``producer.distributed.failure_result``)."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        super().__init__(dict(result))
        self.result = dict(result)

    def __str__(self) -> str:
        return f"{self.result.get('status')}: {self.result.get('error')}"

    def __repr__(self) -> str:  # what Flower shows as the exception: the one-line message, not the whole result
        return f"SampleFailed({str(self)!r})"


def carried_result(value: Any) -> dict[str, Any] | None:
    """The sample result a :class:`SampleFailed` carries, as a client gets it back from the result backend
    (Celery rebuilds the exception from its name and arguments, as this class or a stand-in of that name);
    None for anything else."""
    if isinstance(value, BaseException) and type(value).__name__ == "SampleFailed" and value.args:
        carried = value.args[0]
        if isinstance(carried, dict) and "status" in carried:
            return carried
    return None


def cancel_key(run_id: str) -> str:
    """The result-backend key that marks a run as cancelled: it holds the newest generation of samples to skip."""
    return f"batt-run-cancelled-{run_id}"


def protocol_args(message: Mapping[str, Any]) -> tuple[tuple[tuple[Any, Any], ...], Any, Any]:
    """``(S, I, expected)`` of a message, as the batt protocol's immutable grids."""
    S = tuple((to_grid(i), to_grid(o)) for i, o in message["S"])
    expected = message.get("expected")
    return S, to_grid(message["input"]), None if expected is None else to_grid(expected)


def run_message(
    message: Mapping[str, Any],
    log_path: str | None,
    max_result_bytes: int,
    reraise: tuple[type[BaseException], ...] = (),
    timeouts: tuple[type[BaseException], ...] = (),
    batt: BattFn | None = None,
) -> dict[str, Any]:
    """Load the message's batt (cached per process) unless given, score the sample and bound the result's size.

    Each batt call is limited to the message's ``time_limit`` (:mod:`batt_tasks.call_limit`); ``timeouts``
    are further exceptions that mean "out of time" (the worker's soft limit). The result is in the packed
    form (:func:`batt_tasks.scoring.pack_result`), in both modes: it is what crosses the pipe or the result
    backend, and what ``BATT_MAX_RESULT_BYTES`` bounds.
    """
    if batt is None:
        batt = load_code(message["batt"])
    S, I, expected = protocol_args(message)  # noqa: E741 - the protocol's name
    result = score_sample(
        batt,
        message["task_id"],
        S,
        I,
        expected,
        log_path,
        kind=message["kind"],
        index=message["index"],
        reraise=reraise,
        call_limit=call_limit(float(message["time_limit"])),
        timeouts=(CallTimeout, *timeouts),
        packed=True,
    )
    return bound_size(result, max_result_bytes)
