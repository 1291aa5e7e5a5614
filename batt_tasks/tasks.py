"""The sample task: thin Celery glue over the pure scoring core.

``score_sample`` receives one self-contained sample message (see :mod:`producer.plan`), loads the
batt (cached per pool process), scores the sample and returns the compact result of
:func:`batt_tasks.scoring.score_sample`. Each batt call is limited to the message's ``time_limit``; the
soft time limit (both calls) becomes a ``timeout`` result; the hard
limit, a dead pool process or exhausted retries end the task as a failure that the producer records
as that sample's ``timeout``/``error`` result. Nothing a batt does stops the run.

A sample that ended as ``error`` or ``timeout`` ends the task with :class:`batt_tasks.sample.SampleFailed`
(carrying the sample's result, traceback included): Celery stores it, and Flower shows it, as FAILURE,
while the producer records the carried result. It is an expected exception (``throws``): the worker logs
it in one INFO line, not as an unexpected error with Celery's own traceback.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from typing import Any

from celery import states
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import worker_process_init
from celery.utils.log import get_task_logger

from batt_tasks import guard, signing
from batt_tasks.bundle import BundleError
from batt_tasks.celery import app
from batt_tasks.config import settings
from batt_tasks.loader import BattFn, BattLoadError, load_code
from batt_tasks.sample import SampleFailed, bundle_key, cancel_key, rejected_result, run_message
from batt_tasks.scoring import STATUS_OK, STATUS_TIMEOUT, failed_sample, one_line, sample_time_limit, traceback_text

logger = get_task_logger(__name__)

_conf = settings()

TASK_NAME = "batt.score_sample"


@worker_process_init.connect
def freeze_inherited_heap(**_: Any) -> None:
    """A new pool process moves everything it inherited from the worker's main process (Celery, kombu, the app:
    about 75,000 objects) to the garbage collector's permanent generation.

    Those objects live as long as the process anyway, but every full collection would scan them again, and a
    batt allocates enough to trigger one every 25 or so samples: with the built-in battery that was about
    1.3 ms of CPU per sample, 4 % of its cost, that a pool process outside Celery does not pay. Objects
    created afterwards (the batt, its caches, each sample's garbage) are collected as usual.
    """
    gc.freeze()


CANCEL_CHECK_SECONDS = 1.0  # a pool process reads a run's cancel mark at most this often
_cancel_marks: dict[str, tuple[float, Any]] = {}


def _cancelled(backend: Any, message: Mapping[str, Any]) -> bool:
    """Whether the message's run was cancelled at this sample's generation (read at most once a second)."""
    run_id = message["run_id"]
    now = time.monotonic()
    seen = _cancel_marks.get(run_id)
    if seen is None or now - seen[0] > CANCEL_CHECK_SECONDS:
        try:
            seen = (now, backend.get(cancel_key(run_id)))
        except Exception as exc:  # noqa: BLE001 - the backend is away for a moment: score the sample
            logger.warning("run %s: cancel check failed (%s); scoring the sample", run_id, one_line(exc))
            return False
        _cancel_marks[run_id] = seen
    mark = seen[1]
    return mark is not None and int(message.get("generation", 0)) <= int(mark)


_keys: list[signing.Keys] = []


def _signing_keys() -> signing.Keys:
    """This process's signing keys, resolved once."""
    if not _keys:
        _keys.append(signing.resolve_keys(_conf))
    return _keys[0]


def _load_checked(backend: Any, message: Mapping[str, Any]) -> tuple[BattFn | None, str | None]:
    """The message's batt, or why this worker refuses it: the signature is checked before anything is fetched."""
    try:
        keys = _signing_keys()
    except signing.SigningError as exc:
        return None, f"{exc}"
    if not signing.verify(message, keys):
        return None, (
            f"signature mismatch — give producer and workers the same BATT_SIGNING_KEY (this worker uses {keys.source})"
        )
    try:
        return load_code(message["batt"], lambda bid: backend.get(bundle_key(bid)), _conf), None
    except (BattLoadError, BundleError) as exc:
        return None, str(exc)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - the backend failed mid-fetch: the sample says so
        return None, f"the bundle could not be fetched ({one_line(exc)}); check the result backend"


# default_retry_delay: the countdown before a sample whose pool process died is run again.
# resultrepr_maxsize: worker logs and Flower show a short result, not whole candidate lists.
# autoretry_for: "can't start new thread" (only that) is retried with exponential backoff, jittered unless
# BATT_RETRY_JITTER=0; every other error is the sample's result at once.
@app.task(
    name=TASK_NAME,
    bind=True,
    max_retries=_conf.retry_max,
    default_retry_delay=1,
    resultrepr_maxsize=200,
    autoretry_for=(guard.ThreadStartError,),
    retry_backoff=True,
    retry_backoff_max=_conf.retry_backoff_max,
    retry_jitter=_conf.retry_jitter,
    throws=(SampleFailed,),
)
def score_sample(self: Any, message: Mapping[str, Any]) -> dict[str, Any]:
    """Score one sample of one ARC task with the message's batt."""
    if _cancelled(self.backend, message):
        # The run was stopped: skip the sample and leave it REVOKED (not finished), so --resume submits it again.
        logger.info("run %s cancelled: skipping %s", message["run_id"], self.request.argsrepr)
        self.update_state(state=states.REVOKED)
        raise Ignore()
    key = f"{message['task_id']} {message['kind']}[{message['index']}]"
    reason, _ = guard.check_critical(_conf)
    if reason is not None:
        if self.request.retries < self.max_retries:
            logger.warning(
                "guard: sample %s deferred: %s; retry %d/%d in %gs",
                key,
                reason,
                self.request.retries + 1,
                self.max_retries,
                _conf.guard_defer_seconds,
            )
            raise self.retry(countdown=_conf.guard_defer_seconds)
        logger.warning("guard: sample %s runs under critical pressure (%s): no retries left", key, reason)
    try:
        batt, refused = _load_checked(self.backend, message)  # an import past the soft limit is a timeout
        if refused is not None:
            logger.error("sample %s: batt refused: %s", key, refused)
            raise SampleFailed(rejected_result(message, self.request.hostname or "?", refused))
        # the soft limit covers both batt calls: reached in the diff call, it keeps the solve call's results
        result = run_message(message, None, _conf.max_result_bytes, timeouts=(SoftTimeLimitExceeded,), batt=batt)
        if guard.thread_error_in_result(result):
            if self.request.retries >= self.max_retries:
                result["error"] = guard.thread_exhaustion_message(self.request.retries)
                raise SampleFailed(result)
            logger.warning("guard: sample %s hit %r; retrying with backoff", key, guard.THREAD_START_RESULT_ERROR)
            raise guard.ThreadStartError(f"{key}: {guard.THREAD_START_MESSAGE}")
    except SoftTimeLimitExceeded as exc:
        limit = sample_time_limit(float(message["time_limit"]))
        scored = message.get("expected") is not None
        result = failed_sample(
            message["task_id"],
            message["kind"],
            message["index"],
            STATUS_TIMEOUT,
            f"sample time limit of {limit:g}s (both calls) exceeded",
            scored,
        )
        result["traceback"] = traceback_text(exc)  # where the batt was when its time ran out
    if result["status"] != STATUS_OK:
        raise SampleFailed(result)
    return result
