"""The HTML report in headless Chromium: a real 32-task run (written by ``batt-submit --report``) and a
comparison with a second run, opened from ``file://`` with no console message, the counts of
``summary.json``, attempt grids of the right shape and cells, also with JavaScript off; screenshots are
saved under the test's tmp dir (and ``$BATT_TEST_ARTIFACTS`` when set)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from producer.report import write_report
from producer.report.grids import decode_runs
from tests.report_shots import browser, browser_paths, console, element_png, page_png, two_runs

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if browser_paths() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium/chromedriver missing; CI must install Debian's chromium and chromium-driver")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    return two_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def driver() -> Any:
    with browser(1400, 1000) as d:
        yield d


def _keep(shot: Path) -> None:
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    artifacts = os.environ.get("BATT_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(artifacts) / shot.name)


def _attempt_checks(driver: Any, run: Path) -> int:
    """Every attempt of every solved task is drawn with its grid's shape and cells; returns how many."""
    lines = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    checked = 0
    for line in (t for t in lines if t["solved"]):
        drawn = driver.execute_script(
            "const s = document.querySelector(`section.task[data-task='${arguments[0]}']`);"
            "return [...s.querySelectorAll('figure')].filter(f => f.textContent.startsWith('attempt'))"
            ".map(f => { const g = f.querySelector('svg'); const r = g.getBoundingClientRect();"
            " return [g.outerHTML, g.viewBox.baseVal.width, g.viewBox.baseVal.height, r.width, r.height]; });",
            line["task_id"],
        )
        expected = [grid for attempts in line["predictions"] for grid in attempts]
        assert len(drawn) == len(expected), line["task_id"]
        for (svg, cols, rows, width, height), grid in zip(drawn, expected, strict=True):
            assert (rows, cols) == (len(grid), len(grid[0]))
            assert rows * cols == sum(len(r) for r in grid)
            assert width > 0 and height > 0
            assert decode_runs(svg) == grid
            checked += 1
    return checked


def test_report_of_a_real_run(runs: tuple[Path, Path], driver: Any, tmp_path: Path) -> None:
    a, _ = runs
    summary = json.loads((a / "summary.json").read_text())
    page = a / "report.html"  # written by batt-submit --report
    driver.get(page.as_uri())
    assert console(driver) == []
    shown = {k: driver.find_element("id", k).text for k in ("solved", "scored", "total", "run-id")}
    assert shown == {
        "solved": str(summary["solved"]),
        "scored": str(summary["tasks_scored"]),
        "total": str(summary["tasks"]),
        "run-id": summary["run_id"],
    }
    assert summary["solved"] > 0
    assert _attempt_checks(driver, a) >= summary["solved"]
    # a known task: 0d3d703e (3x3 colour map), solved by the battery, its first attempt 9 cells
    cells = driver.execute_script(
        "const f = [...document.querySelectorAll(`section.task[data-task='0d3d703e'] figure`)]"
        ".find(f => f.textContent.startsWith('attempt 1'));"
        "const g = f.querySelector('svg'); return [g.viewBox.baseVal.width * g.viewBox.baseVal.height,"
        " g.querySelectorAll('path[class^=c]').length + g.querySelectorAll('rect').length];"
    )
    assert cells[0] == 9 and cells[1] >= 1
    _keep(page_png(driver, tmp_path / "report.png"))
    _keep(element_png(driver, "section.task[data-task='0d3d703e']", tmp_path / "report-task.png"))
    driver.set_window_size(1400, 1000)
    assert console(driver) == []


def test_comparison_report(runs: tuple[Path, Path], driver: Any, tmp_path: Path) -> None:
    a, b = runs
    report = write_report(a, against=b)
    assert report.comparison is not None
    c = report.comparison
    assert c.gained and c.lost and len(c.only_a) == 1 and c.only_b == ["007bbfb7"]
    driver.get(report.path.as_uri())
    assert console(driver) == []
    assert driver.find_element("id", "compare-line").text == c.line()
    sides = driver.execute_script("return document.querySelectorAll('section.cmp').length")
    assert sides == len(c.gained) + len(c.lost)
    # the task the variant batt made fail shows its message, escaped
    text = driver.find_element("css selector", "section.cmp[data-task='0d3d703e']").text
    assert "ValueError: <b>boom</b> & 'quoted'" in text
    _keep(element_png(driver, "#overview", tmp_path / "report-compare.png"))


def test_report_needs_no_javascript(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = runs
    summary = json.loads((a / "summary.json").read_text())
    with browser(1400, 1000, javascript=False) as d:
        d.get((a / "report.html").as_uri())
        assert d.find_element("id", "solved").text == str(summary["solved"])
        figures = d.find_elements("css selector", "section.task[data-task='0d3d703e'] figure svg")
        assert figures and all(f.size["width"] > 0 for f in figures)
        _keep(element_png(d, "#overview", tmp_path / "report-nojs.png"))
        assert console(d) == []
