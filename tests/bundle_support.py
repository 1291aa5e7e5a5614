"""Batts for the bundle tests: a batt file that imports sibling modules, written into a directory per iteration.

The batt's single candidate is ``helper.transform(I)``, so the results show which ``helper.py`` ran.
When its process has ``BATT_TEST_MARKER_DIR`` set (only the test's workers do), importing the batt writes
a marker file named by the batt's tag into that directory: its absence proves no code of it ran there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from workers import run_dir, task_lines

TRANSFORMS = {
    "identity": "def transform(I):\n    return I\n",
    "flip": "def transform(I):\n    return tuple(tuple(reversed(row)) for row in I)\n",
    "flipud": "def transform(I):\n    return tuple(reversed(I))\n",
    "transpose": "def transform(I):\n    return tuple(zip(*I))\n",
}

BATT = """import os
import time

from helper import transform
{dsl_import}
TAG = {tag!r}
_marker_dir = os.environ.get("BATT_TEST_MARKER_DIR")
if _marker_dir:
    with open(os.path.join(_marker_dir, TAG), "a") as fh:
        fh.write(str(os.getpid()) + "\\n")


def batt(task_id, S, I, C, log_path):
    time.sleep(float(os.environ.get("BATT_TEST_SLEEP", "0")))
    out = transform(I)
{dsl_call}    return [(1, False, "helper", out)], []
"""


def write_batt(directory: Path, transform: str, tag: str, dsl: str | None = None) -> Path:
    """``directory/mybatt.py`` + ``helper.py`` (with the named transform) and, with ``dsl``, a ``dsl.py``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "helper.py").write_text(TRANSFORMS[transform])
    dsl_import, dsl_call = "", ""
    if dsl is not None:
        # imported at call time too: the module in sys.modules when the sample runs must be this bundle's
        (directory / "dsl.py").write_text(TRANSFORMS[dsl].replace("def transform", "def dsl_transform"))
        dsl_import = "import dsl\n"
        dsl_call = "    import dsl as _d\n    out = _d.dsl_transform(out)\n"
    batt = directory / "mybatt.py"
    batt.write_text(BATT.format(tag=tag, dsl_import=dsl_import, dsl_call=dsl_call))
    return batt


def same_results(a: Path, b: Path) -> None:
    """The run under ``a`` scored exactly what the run under ``b`` did (every task line, every field)."""
    la, lb = task_lines(a), task_lines(b)
    assert sorted(la) == sorted(lb) and la, (sorted(la), sorted(lb))
    for task_id in la:
        for field in sorted(set(la[task_id]) | set(lb[task_id])):
            assert la[task_id].get(field) == lb[task_id].get(field), f"{task_id}.{field} differs"


def submission(out: Path) -> object:
    """The run's ``submission.json`` (the test outputs it would submit)."""
    return json.loads((run_dir(out) / "submission.json").read_text())


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a run that stopped with exit 2 printed (no traceback, nothing else on stderr)."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]
