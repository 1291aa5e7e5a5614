"""What ``batt-submit --help`` ends with, and ``--version``: the environment and exit codes a script relies on."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

from producer.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SAMPLE_ERRORS, EXIT_USAGE

EPILOG = f"""\
environment (producer; workers read the same BATT_* variables, see batt_tasks/config.py):
  BATT_BROKER_URL            Celery broker (default redis://localhost:6379/0)
  BATT_RESULT_BACKEND        result backend (default: the broker's Redis, db 1)
  BATT_REQUIRE_BROKER=1      never fall back to local mode (as --require-broker)
  BATT_BROKER_CHECK_TIMEOUT  seconds to wait for the broker before running locally (default 2)
  BATT_VISIBILITY_TIMEOUT    seconds before Redis redelivers an unacknowledged sample (default 3600)
  BATT_RESULT_EXPIRES        seconds results and run plans stay in the backend (default 86400)
  BATT_MAX_RESULT_BYTES      largest JSON result of one sample (default 1000000)
  BATT_TASK_EVENTS=1         Celery task events from the start (default off; Flower turns them on)

exit codes:
  {EXIT_OK}    every sample scored
  {EXIT_SAMPLE_ERRORS}    some samples failed or timed out, or the run stopped early (--max-errors); results kept
  {EXIT_USAGE}    bad input or setup (options, data, batt, broker URL): one line on stderr, nothing run
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C, SIGTERM); finished tasks kept, continue with --resume RUN_ID

files in --out/RUN_ID/: results.jsonl, submission.json, summary.json, errors.log, batt.log, plan.json
"""


def version() -> str:
    """The installed batt-queue version."""
    try:
        return _dist_version("batt-queue")
    except PackageNotFoundError:
        return "unknown (not installed)"
