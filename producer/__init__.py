"""batt-submit: load ARC data, pick tasks, score every sample (on a cluster or locally) and write results.

The Python API (see :mod:`producer.api`)::

    from producer import RunOptions, score_batt
"""

from batt_tasks.config import ConfigError
from batt_tasks.loader import BattLoadError
from producer.api import Run, RunOptions, TaskResult, score_batt, status
from producer.bundling import BattRejected
from producer.data import Task, load_tasks
from producer.distributed import NoWorker
from producer.errors import UsageError

__all__ = [
    "BattLoadError",
    "BattRejected",
    "ConfigError",
    "NoWorker",
    "Run",
    "RunOptions",
    "Task",
    "TaskResult",
    "UsageError",
    "load_tasks",
    "score_batt",
    "status",
]
