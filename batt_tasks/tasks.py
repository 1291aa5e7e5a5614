"""The sample task: thin Celery glue over the pure scoring core.

``score_sample`` receives one self-contained sample message (see :mod:`producer.plan`), loads the
batt (cached per pool process), scores the sample and returns the compact result of
:func:`batt_tasks.scoring.score_sample`. A soft time limit becomes a ``timeout`` result; the hard
limit, a dead pool process or exhausted retries end the task as a failure that the producer records
as that sample's ``timeout``/``error`` result. Nothing a batt does stops the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import states
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from batt_tasks.celery import app
from batt_tasks.config import settings
from batt_tasks.sample import cancel_key, run_message
from batt_tasks.scoring import STATUS_TIMEOUT, failed_sample

logger = get_task_logger(__name__)

_conf = settings()

TASK_NAME = "batt.score_sample"


def _cancelled(backend: Any, message: Mapping[str, Any]) -> bool:
    mark = backend.get(cancel_key(message["run_id"]))
    return mark is not None and int(message.get("generation", 0)) <= int(mark)


# default_retry_delay: the countdown before a sample whose pool process died is run again.
# resultrepr_maxsize: worker logs and Flower show a short result, not whole candidate lists.
@app.task(name=TASK_NAME, bind=True, max_retries=_conf.retry_max, default_retry_delay=1, resultrepr_maxsize=200)
def score_sample(self: Any, message: Mapping[str, Any]) -> dict[str, Any]:
    """Score one sample of one ARC task with the message's batt."""
    if _cancelled(self.backend, message):
        # The run was stopped: skip the sample and leave it REVOKED (not finished), so --resume submits it again.
        logger.info("run %s cancelled: skipping %s", message["run_id"], self.request.argsrepr)
        self.update_state(state=states.REVOKED)
        raise Ignore()
    try:
        return run_message(message, None, _conf.max_result_bytes, reraise=(SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        limit = message.get("time_limit")
        scored = message.get("expected") is not None
        return failed_sample(
            message["task_id"],
            message["kind"],
            message["index"],
            STATUS_TIMEOUT,
            f"time limit of {limit:g}s exceeded",
            scored,
        )
