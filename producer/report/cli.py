"""``batt-report``: write a run's HTML report, optionally against another run.

    batt-report RUN [--against OTHER_RUN] [-o FILE.html] [--open] [--out DIR]

A run is a run directory or a run id under ``--out`` (default ``runs``). Bad input ends in one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from collections.abc import Sequence
from typing import NoReturn

from producer.errors import EXIT_OK, EXIT_USAGE, UsageError
from producer.report import write_report


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``batt-report`` argument parser."""
    p = _Parser(
        prog="batt-report",
        description="Write a self-contained HTML report of a batt-submit run: grids, attempts, candidates, costs.",
    )
    p.add_argument("run", metavar="RUN", help="a run directory, or a run id under --out")
    p.add_argument("--against", metavar="OTHER_RUN", help="compare with this run (directory or run id)")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.html",
        help="where to write the report (default RUN/report.html; with --against, RUN/report-vs-<OTHER>.html)",
    )
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.add_argument("--out", default="runs", metavar="DIR", help="where run ids are looked up (default runs)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``batt-report``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        report = write_report(args.run, args.against, args.output, out=args.out)
    except UsageError as exc:
        print(f"batt-report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"batt-report: error: cannot write the report ({exc}); pass a writable -o FILE.html", file=sys.stderr)
        return EXIT_USAGE
    if report.data_note:
        print(f"batt-report: warning: {report.data_note}", file=sys.stderr)
    if report.comparison is not None:
        if report.comparison.warning:
            print(f"batt-report: warning: {report.comparison.warning}", file=sys.stderr)
        print(report.comparison.line())
    print(f"report: {report.path}")
    if args.open:
        webbrowser.open(report.path.resolve().as_uri())
    return EXIT_OK


def entry() -> NoReturn:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
