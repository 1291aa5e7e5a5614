"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for the HTML report.

Used by ``tests/test_report_browser.py``, and as a script to regenerate the README's screenshot::

    python -m tests.report_shots docs/report.png      # two 32-task local runs, one against the other

Selenium is told where Debian's chromedriver and chromium are, and runs offline (no driver download).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANT_BATT = ROOT / "tests" / "batts" / "report_variant.py"


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed, else None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@contextmanager
def browser(width: int = 1400, height: int = 1000, javascript: bool = True) -> Iterator[Any]:
    """A headless Chromium session (a Selenium ``WebDriver``) with the browser console recorded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    chromium, driver_path = paths
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    profile = tempfile.mkdtemp(prefix="batt-report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console(driver: Any) -> list[str]:
    """Every browser console message (errors, CSP violations, failed loads) since the last call."""
    return [f"{m['level']}: {m['message']}" for m in driver.get_log("browser")]


def element_png(driver: Any, css: str, path: Path) -> Path:
    """Save a screenshot of the first element matching ``css`` (scrolled into view, fully laid out)."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView()", element)
    path.write_bytes(base64.b64decode(element.screenshot_as_base64))
    return path


def page_png(driver: Any, path: Path) -> Path:
    """Save a screenshot of the whole page, however long, by sizing the window to it."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    width = int(driver.execute_script("return document.documentElement.scrollWidth"))
    driver.set_window_size(max(width, 800), min(height + 100, 16000))
    driver.save_screenshot(str(path))
    return path


def submit(out: Path, *args: str) -> Path:
    """Run ``batt-submit --local -q --out OUT ARGS`` and return the run directory it made."""
    before = set(out.iterdir()) if out.exists() else set()
    proc = subprocess.run(
        [sys.executable, "-m", "producer.cli", "--local", "-q", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    (made,) = set(out.iterdir()) - before
    return made


def two_runs(out: Path) -> tuple[Path, Path]:
    """Run A (the built-in battery, 32 random tasks, seed 1, with ``--report``) and run B (a variant batt).

    B scores 31 of A's tasks plus one more with ``tests/batts/report_variant.py``: it loses tasks A
    solves, solves one A does not, and errors on another.
    """
    a = submit(out, "-c", "-32", "--seed", "1", "--report")
    ids = sorted(line.split('"', 4)[3] for line in (a / "results.jsonl").read_text().splitlines())
    b = submit(out, "-b", str(VARIANT_BATT), "-i", *ids[1:], "007bbfb7")
    return a, b


def main(argv: list[str] | None = None) -> int:
    """Regenerate the README's screenshot of a report (A against B, top of the page and a task)."""
    from producer.report import write_report

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("png", type=Path, help="where to write the screenshot (e.g. docs/report.png)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = two_runs(Path(tmp))
        report = write_report(a, against=b)
        with browser(1200, 1800) as driver:
            driver.get(report.path.as_uri())
            element_png(driver, "#overview", args.png)
            problems = console(driver)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{args.png}: screenshot of {report.path.name} ({report.comparison.line() if report.comparison else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
