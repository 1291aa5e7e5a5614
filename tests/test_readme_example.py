"""The README's search-loop example runs as written (local mode: no broker answers) and finds what it says."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- search-loop example: executed by tests/test_readme_example.py -->"


def readme_example() -> str:
    """The first ```python block after the marker in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARKER in text, "the README lost its search-loop example marker"
    found = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert found, "no python block after the marker"
    return found.group(1)


def test_readme_search_loop_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(readme_example(), encoding="utf-8")
    env = dict(os.environ, BATT_BROKER_URL="redis://127.0.0.1:9/0", BATT_BROKER_CHECK_TIMEOUT="0.5")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.count("broker unreachable") == 1  # the fallback warning, once per process
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "programs [1, 2]",
        "programs [2, 3, 4]",
        "programs [2, 3, 4, 5, 6]",
        "programs [2, 3, 4, 6, 7, 8]",
    ]
    assert lines[-2].endswith("8/8 tasks solved on train, 8 on test")
    best = ast.literal_eval(lines[-1])
    assert best == {
        "3c9b0459": 4,
        "6150a2bd": 4,
        "67a3c6ac": 2,
        "68b16354": 3,
        "74dd1130": 7,
        "9dfd6313": 7,
        "a416b8f3": 8,
        "ed36ccf7": 6,
    }
    # the batt file was rewritten each iteration: it holds the last pool's programs
    assert [int(t) for t in re.findall(r"\((\d+), False, 'p", (tmp_path / "search_batt.py").read_text())] == [
        2,
        3,
        4,
        6,
        7,
        8,
    ]
